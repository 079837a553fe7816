"""Writes contract.json: the shared vectors that every server (tests/test_server_contract.py) and
the Rust crates (`cargo test`) are held to.

Run it again only when the contract changes: `python tests/vectors/make_contract_vectors.py`.
Each request vector is a raw body and content type with the statuses the contract allows (one,
or several where docs/api.md leaves a stack the choice: exotic JSON gets a 4xx or a documented
harmless reading) and, where it pins it, the `field` of the error; a 200 carries the number of
predictions. Each feature vector is a passenger with the float32 features the fixed
preprocessing below gives.
"""

from __future__ import annotations

import json
from pathlib import Path

from servebench import contract
from servebench.features import Preprocessor
from servebench.serving.schema import Passenger

PREPROCESS = {
    "features": ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"],
    "sex_mapping": {"female": 0, "male": 1},
    "fill_values": {"Age": 28.0},
    "mean": [0.0, 0.0, 29.498846153846152, 0.0, 0.0, 32.09668087739032],
    "scale": [1.0, 1.0, 13.0062137648, 1.0, 1.0, 49.6974280829],
    "format_version": 1,
}

OK = {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}


def body(**changes: object) -> str:
    doc = {**OK, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not DROP})


DROP = object()
J = "application/json"

NOT_JSON = (400,)
REJECTED = (422,)
# Exotic JSON: a 400 from a strict parser, or a 422 from the field rules after a lenient one.
EXOTIC = (400, 422)
# A duplicate key: the last value read (JSON parsers' usual reading), or a 400.
DUPLICATE = (200, 400)
UNCHECKED = object()

# name, body, content type, allowed statuses, field of the error (UNCHECKED: any), predictions
REQUESTS: list[tuple[str, str, str | None, tuple[int, ...], object, int | None]] = [
    ("valid", body(), J, (200,), None, 1),
    ("valid with charset", body(), "application/json; charset=utf-8", (200,), None, 1),
    ("age null", body(Age=None), J, (200,), None, 1),
    ("age absent", body(Age=DROP), J, (200,), None, 1),
    ("integer age and fare", body(Age=30, Fare=0), J, (200,), None, 1),
    ("bounds", body(Age=200, Fare=100000, SibSp=100, Parch=100), J, (200,), None, 1),
    ("Fare tiny", body(Fare=1e-300), J, (200,), None, 1),
    ("batch", json.dumps({"instances": [OK, {**OK, "Sex": "female", "Age": None}]}), J, (200,), None, 2),
    ("batch of 1024", json.dumps({"instances": [OK] * 1024}), J, (200,), None, 1024),
    ("empty body", "", J, NOT_JSON, None, None),
    ("truncated", body()[:-5], J, NOT_JSON, None, None),
    ("trailing garbage", body() + "x", J, NOT_JSON, None, None),
    ("very deep nesting", "[" * 100000 + "]" * 100000, J, NOT_JSON, None, None),
    ("NaN literal", body().replace("22.0", "NaN"), J, EXOTIC, UNCHECKED, None),
    ("Infinity literal", body().replace("22.0", "Infinity"), J, EXOTIC, UNCHECKED, None),
    ("-Infinity literal", body().replace("22.0", "-Infinity"), J, EXOTIC, UNCHECKED, None),
    ("huge float", body().replace("22.0", "1e400"), J, EXOTIC, UNCHECKED, None),
    ("huge integer", body().replace('"Pclass": 3', '"Pclass": ' + "9" * 400), J, EXOTIC, UNCHECKED, None),
    ("deep nesting", "[" * 100 + "]" * 100, J, EXOTIC, UNCHECKED, None),
    ("deep in a field", body(Fare=DROP)[:-1] + ', "Fare": ' + "[" * 40 + "]" * 40 + "}", J, EXOTIC, UNCHECKED, None),
    ("duplicate key", body()[:-1] + ', "Age": 30}', J, DUPLICATE, UNCHECKED, 1),
    ("duplicate key in batch", '{"instances": [' + body()[:-1] + ', "Sex": "female"}]}', J, DUPLICATE, UNCHECKED, 1),
    ("no content type", body(), None, (415,), None, None),
    ("text/plain", body(), "text/plain", (415,), None, None),
    ("form", body(), "application/x-www-form-urlencoded", (415,), None, None),
    ("json with charset", body(), "application/json; charset=utf-8", (200,), None, 1),
    ("json suffix", body(), "application/vnd.servebench+json", (200,), None, 1),
    ("json suffix outside application", body(), "text/x-servebench+json", (415,), None, None),
    ("array body", json.dumps([OK]), J, REJECTED, None, None),
    ("string body", '"hello"', J, REJECTED, None, None),
    # FastAPI reads a null body as no body at all, which it refuses before the field rules.
    ("null body", "null", J, EXOTIC, None, None),
    ("missing Pclass", body(Pclass=DROP), J, REJECTED, "Pclass", None),
    ("missing Sex", body(Sex=DROP), J, REJECTED, "Sex", None),
    ("missing SibSp", body(SibSp=DROP), J, REJECTED, "SibSp", None),
    ("missing Parch", body(Parch=DROP), J, REJECTED, "Parch", None),
    ("missing Fare", body(Fare=DROP), J, REJECTED, "Fare", None),
    ("Pclass 0", body(Pclass=0), J, REJECTED, "Pclass", None),
    ("Pclass 4", body(Pclass=4), J, REJECTED, "Pclass", None),
    ("Pclass string", body(Pclass="3"), J, REJECTED, "Pclass", None),
    ("integral floats", body(Pclass=1.0, SibSp=0.0, Parch=2.0), J, (200,), None, 1),
    ("Pclass fraction", body(Pclass=2.5), J, REJECTED, "Pclass", None),
    ("Pclass bool", body(Pclass=True), J, REJECTED, "Pclass", None),
    ("Sex other", body(Sex="other"), J, REJECTED, "Sex", None),
    ("Sex capitalised", body(Sex="Male"), J, REJECTED, "Sex", None),
    ("Sex number", body(Sex=1), J, REJECTED, "Sex", None),
    ("Sex null", body(Sex=None), J, REJECTED, "Sex", None),
    ("unicode in Sex", body(Sex="m\u00e4le\u0007"), J, REJECTED, "Sex", None),
    ("Age negative", body(Age=-1), J, REJECTED, "Age", None),
    ("Age too large", body(Age=200.5), J, REJECTED, "Age", None),
    ("Age string", body(Age="22"), J, REJECTED, "Age", None),
    ("Age bool", body(Age=False), J, REJECTED, "Age", None),
    ("SibSp negative", body(SibSp=-1), J, REJECTED, "SibSp", None),
    ("SibSp fraction", body(SibSp=0.5), J, REJECTED, "SibSp", None),
    ("SibSp too large", body(SibSp=101), J, REJECTED, "SibSp", None),
    ("Parch string", body(Parch="0"), J, REJECTED, "Parch", None),
    ("Parch null", body(Parch=None), J, REJECTED, "Parch", None),
    ("Fare negative", body(Fare=-0.01), J, REJECTED, "Fare", None),
    ("Fare too large", body(Fare=1e300), J, REJECTED, "Fare", None),
    ("Fare null", body(Fare=None), J, REJECTED, "Fare", None),
    ("unknown field", body(Name="Braund"), J, REJECTED, "Name", None),
    ("unicode in unknown field", body(**{"Näme\u0000": "x"}), J, REJECTED, "Näme\u0000", None),
    ("instances empty", json.dumps({"instances": []}), J, REJECTED, "instances", None),
    ("instances 1025", json.dumps({"instances": [OK] * 1025}), J, REJECTED, "instances", None),
    ("instances not array", json.dumps({"instances": OK}), J, REJECTED, "instances", None),
    ("instances null", json.dumps({"instances": None}), J, REJECTED, "instances", None),
    ("instances with a bad passenger", json.dumps({"instances": [OK, {**OK, "Age": -3}]}), J, REJECTED,
     "instances[1].Age", None),
    ("instances with a non-object", json.dumps({"instances": [OK, 7]}), J, REJECTED, "instances[1]", None),
    ("instances beside fields", json.dumps({"instances": [OK], "Pclass": 3}), J, REJECTED, "Pclass", None),
    ("mixed types in batch", json.dumps({"instances": [OK, {**OK, "Fare": "7.25"}]}), J, REJECTED,
     "instances[1].Fare", None),
]  # fmt: skip

FEATURE_CASES = [
    OK,
    {**OK, "Age": None},
    {**OK, "Sex": "female", "Pclass": 1, "Age": 38, "Fare": 71.2833},
    {"Pclass": 2, "Sex": "female", "Age": 0.42, "SibSp": 0, "Parch": 1, "Fare": 0},
    {"Pclass": 1, "Sex": "male", "Age": 80, "SibSp": 8, "Parch": 6, "Fare": 512.3292},
]


def vectors() -> dict[str, object]:
    pre = Preprocessor.from_json(PREPROCESS)
    requests = []
    for name, raw, content_type, statuses, field, count in REQUESTS:
        case: dict[str, object] = {"name": name, "body": raw, "content_type": content_type, "status": list(statuses)}
        if statuses != (200,) and field is not UNCHECKED:
            case["field"] = field
        if count is not None:
            case["count"] = count
        requests.append(case)
    features = []
    for passenger in FEATURE_CASES:
        row = pre.transform_passengers([Passenger.model_validate(passenger)])[0]
        features.append({"passenger": passenger, "features": [float(x) for x in row]})
    # The contract's limits as Python holds them (servebench.contract); the Rust crates check
    # their own constants against these.
    limits = {
        "fields": list(contract.FIELDS),
        "max_body_bytes": contract.MAX_BODY_BYTES,
        "max_batch": contract.MAX_BATCH,
        "age_max": contract.AGE_MAX,
        "fare_max": contract.FARE_MAX,
        "count_max": contract.COUNT_MAX,
    }
    return {"limits": limits, "preprocess": PREPROCESS, "features": features, "requests": requests}


if __name__ == "__main__":
    out = Path(__file__).with_name("contract.json")
    out.write_text(json.dumps(vectors(), indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {out}")
