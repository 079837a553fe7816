"""Property-based fuzzing with schemathesis, from the OpenAPI document the FastAPI app (servers/fastapi)
publishes,
against every server: no 5xx, no hang, every response conforms to the schema (status codes,
content types, bodies, headers), schema-violating input is rejected and valid input accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from servebench.config import Matrix

from .conftest import Server, fastapi_app

MAX_EXAMPLES = 60
# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]


def test_schemathesis(server: Server, tmp_path: Path) -> None:
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(fastapi_app().openapi_document(Matrix.load().served(server.framework))))
    cli = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(cli),
            "run",
            str(schema),
            "--url",
            server.base_url,
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261125",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
