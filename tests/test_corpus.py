"""A hand-written corpus of hostile requests, sent as raw bytes to every server: each gets the
4xx of the contract (or, for exotic JSON, one of the readings docs/api.md allows), and a valid
request right after it still succeeds."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import Server, valid_passenger

# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]

OK = json.dumps(valid_passenger())
MIB = 1 << 20


def replace(old: str, new: str) -> bytes:
    assert old in OK
    return OK.replace(old, new, 1).encode()


def padded(total: int) -> bytes:
    """A passenger with an unknown field padding the body to exactly `total` bytes."""
    head = OK[:-1] + ', "pad": "'
    return (head + "x" * (total - len(head) - 2) + '"}').encode()


# Exotic JSON: a 400 from a strict parser, or a 422 from the field rules after a lenient one.
EXOTIC = (400, 422)
# Read the way JSON parsers usually do (the last duplicate wins, a BOM skipped), or refused.
LENIENT = (200, 400)

CORPUS: list[tuple[str, bytes, str | None, int | tuple[int, ...]]] = [
    ("truncated", OK[:20].encode(), "application/json", 400),
    ("truncated after a key", b'{"Pclass":', "application/json", 400),
    ("only an open brace", b"{", "application/json", 400),
    ("empty body", b"", "application/json", 400),
    ("whitespace body", b"   \n", "application/json", 400),
    ("wrong type: Pclass string", replace('"Pclass": 3', '"Pclass": "three"'), "application/json", 422),
    ("wrong type: Age object", replace('"Age": 22.0', '"Age": {"years": 22}'), "application/json", 422),
    ("wrong type: Fare array", replace('"Fare": 7.25', '"Fare": [7.25]'), "application/json", 422),
    (
        "mixed types in a batch",
        json.dumps({"instances": [valid_passenger(), {**valid_passenger(), "SibSp": "1"}]}).encode(),
        "application/json",
        422,
    ),
    ("huge number", replace('"Fare": 7.25', '"Fare": 1e308'), "application/json", 422),
    ("number beyond a double", replace('"Fare": 7.25', '"Fare": 1e999'), "application/json", EXOTIC),
    ("huge integer", replace('"SibSp": 1', '"SibSp": 123456789012345678901234567890'), "application/json", 422),
    ("tiny number", replace('"Fare": 7.25', '"Fare": 5e-324'), "application/json", 200),
    ("negative zero", replace('"Parch": 0', '"Parch": -0'), "application/json", 200),
    ("NaN literal", replace('"Age": 22.0', '"Age": NaN'), "application/json", EXOTIC),
    ("Infinity literal", replace('"Fare": 7.25', '"Fare": Infinity'), "application/json", EXOTIC),
    ("-Infinity literal", replace('"Fare": 7.25', '"Fare": -Infinity'), "application/json", EXOTIC),
    ("duplicate keys", (OK[:-1] + ', "Sex": "female"}').encode(), "application/json", LENIENT),
    ("deeply nested arrays", b"[" * 50_000 + b"]" * 50_000, "application/json", 400),
    ("deeply nested objects", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json", 400),
    ("unicode in Sex", replace('"male"', '"m\\u00e4le"'), "application/json", 422),
    ("raw unicode in Sex", replace('"male"', '"мужчина"'), "application/json", 422),
    ("control character escaped", replace('"male"', '"male\\u0000"'), "application/json", 422),
    ("lone surrogate as an unknown field", (OK[:-1] + ', "\\ud800": 1}').encode(), "application/json", EXOTIC),
    ("lone surrogate as a duplicate key", b'{"\\udfff": 1, "\\udfff": 2}', "application/json", EXOTIC),
    ("lone surrogate in Sex", replace('"male"', '"\\ud800"'), "application/json", EXOTIC),
    ("raw control character in a string", replace('"male"', '"ma\x01le"'), "application/json", 400),
    ("invalid UTF-8", replace('"male"', '"m\xffle"').replace(b"\xc3\xbf", b"\xff"), "application/json", 400),
    ("BOM-prefixed body", b"\xef\xbb\xbf" + OK.encode(), "application/json", LENIENT),
    ("wrong Content-Type", OK.encode(), "text/plain", 415),
    ("form Content-Type", OK.encode(), "application/x-www-form-urlencoded", 415),
    ("missing Content-Type", OK.encode(), None, 415),
    ("JSON Content-Type with charset", OK.encode(), "application/json; charset=utf-8", 200),
    ("body of exactly 1 MiB", padded(MIB), "application/json", 422),
    ("body just over 1 MiB", padded(MIB + 1), "application/json", 413),
    ("batch of 1024", json.dumps({"instances": [valid_passenger()] * 1024}).encode(), "application/json", 200),
    ("batch of 1025", json.dumps({"instances": [valid_passenger()] * 1025}).encode(), "application/json", 422),
]


@pytest.mark.parametrize("name, body, content_type, status", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(
    server: Server, name: str, body: bytes, content_type: str | None, status: int | tuple[int, ...]
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    allowed = status if isinstance(status, tuple) else (status,)
    with httpx.Client(timeout=30) as client:
        response = client.post(server.url("/predict/pytorch_onnx"), content=body, headers=headers)
        assert response.status_code in allowed, f"{name}: {response.status_code} {response.text[:300]}"
        if response.status_code != 200:
            assert set(response.json()) == {"error", "field"}
        after = client.post(
            server.url("/predict/pytorch_onnx"), content=OK.encode(), headers={"Content-Type": "application/json"}
        )
        assert after.status_code == 200


def test_a_client_that_lies_about_its_length_is_dropped_not_fatal(server: Server) -> None:
    """Content-Length larger than what arrives, then the client hangs up: the server survives."""
    parts = urlsplit(server.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            b"POST /predict/pytorch_onnx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n" + OK.encode()[:10]
        )
    assert (
        httpx.post(
            server.url("/predict/pytorch_onnx"),
            content=OK.encode(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        ).status_code
        == 200
    )
