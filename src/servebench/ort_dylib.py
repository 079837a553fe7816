"""Prints the path of the ONNX Runtime shared library inside this environment's onnxruntime
wheel, for the Rust `ort` server's ORT_DYLIB_PATH: both languages then run the same build."""

from __future__ import annotations

import sys
from pathlib import Path


def ort_dylib_path() -> Path:
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    candidates = sorted(capi.glob("libonnxruntime.so*")) + sorted(capi.glob("libonnxruntime*.dylib"))
    if not candidates:
        raise FileNotFoundError(f"no libonnxruntime shared library in {capi}")
    return max(candidates, key=lambda p: len(p.name))


if __name__ == "__main__":
    try:
        print(ort_dylib_path())
    except FileNotFoundError as exc:
        sys.exit(str(exc))
