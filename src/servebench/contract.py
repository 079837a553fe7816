"""The limits of the HTTP contract (docs/api.md) that every Python server shares. The bodies
themselves are the pydantic models of `servebench.serving.schema`."""

from __future__ import annotations

FIELDS = ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare")
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1024
AGE_MAX = 200.0
FARE_MAX = 100_000.0
COUNT_MAX = 100
# An oversized body is still read up to this much and dropped, so that the client, still
# sending, reads the 413 instead of a connection reset.
DRAIN_LIMIT = 16 * MAX_BODY_BYTES

# The ONNX exports' tensor names: input float32 [batch, 6], output float32 [batch].
ONNX_INPUT = "features"
ONNX_OUTPUT = "probability"
