"""The executed report notebook → one self-contained HTML file: code hidden, images inline."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

TEMPLATE = Path(__file__).with_name("report.html.j2")


def notebook_to_html(notebook: Path, html: Path) -> Path:
    exporter = HTMLExporter(
        template_name="lab",
        template_file=str(TEMPLATE),
    )
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.embed_images = True
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html.write_text(body)
    return html
