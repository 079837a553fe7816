"""Writes contract.json: the shared vectors that the Python and Rust unit tests both check.

Run it again only when the contract changes: `python tests/vectors/make_contract_vectors.py`.
Each request vector is a raw body and content type with the status and field the contract gives;
each feature vector is a passenger with the float32 features the fixed preprocessing below gives.
"""

from __future__ import annotations

import json
from pathlib import Path

from servebench.contract import ContractError, parse_request
from servebench.features import Preprocessor

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

REQUESTS: list[tuple[str, str, str | None]] = [
    ("valid", body(), J),
    ("valid with charset", body(), "application/json; charset=utf-8"),
    ("age null", body(Age=None), J),
    ("age absent", body(Age=DROP), J),
    ("integral floats", body(Pclass=1.0, SibSp=0.0, Parch=2.0), J),
    ("integer age and fare", body(Age=30, Fare=0), J),
    ("bounds", body(Age=200, Fare=100000, SibSp=100, Parch=100), J),
    ("batch", json.dumps({"instances": [OK, {**OK, "Sex": "female", "Age": None}]}), J),
    ("batch of 1024", json.dumps({"instances": [OK] * 1024}), J),
    ("empty body", "", J),
    ("truncated", body()[:-5], J),
    ("NaN literal", body().replace("22.0", "NaN"), J),
    ("Infinity literal", body().replace("22.0", "Infinity"), J),
    ("-Infinity literal", body().replace("22.0", "-Infinity"), J),
    ("huge float", body().replace("22.0", "1e400"), J),
    ("huge integer", body().replace('"Pclass": 3', '"Pclass": ' + "9" * 400), J),
    ("duplicate key", body()[:-1] + ', "Age": 30}', J),
    ("deep nesting", "[" * 100 + "]" * 100, J),
    ("deep in a field", body(Fare=DROP)[:-1] + ', "Fare": ' + "[" * 40 + "]" * 40 + "}", J),
    ("very deep nesting", "[" * 100000 + "]" * 100000, J),
    ("trailing garbage", body() + "x", J),
    ("no content type", body(), None),
    ("text/plain", body(), "text/plain"),
    ("form", body(), "application/x-www-form-urlencoded"),
    ("array body", json.dumps([OK]), J),
    ("string body", '"hello"', J),
    ("null body", "null", J),
    ("missing Pclass", body(Pclass=DROP), J),
    ("missing Sex", body(Sex=DROP), J),
    ("missing SibSp", body(SibSp=DROP), J),
    ("missing Parch", body(Parch=DROP), J),
    ("missing Fare", body(Fare=DROP), J),
    ("Pclass 0", body(Pclass=0), J),
    ("Pclass 4", body(Pclass=4), J),
    ("Pclass string", body(Pclass="3"), J),
    ("Pclass fraction", body(Pclass=2.5), J),
    ("Pclass bool", body(Pclass=True), J),
    ("Sex other", body(Sex="other"), J),
    ("Sex capitalised", body(Sex="Male"), J),
    ("Sex number", body(Sex=1), J),
    ("Sex null", body(Sex=None), J),
    ("Age negative", body(Age=-1), J),
    ("Age too large", body(Age=200.5), J),
    ("Age string", body(Age="22"), J),
    ("Age bool", body(Age=False), J),
    ("SibSp negative", body(SibSp=-1), J),
    ("SibSp fraction", body(SibSp=0.5), J),
    ("SibSp too large", body(SibSp=101), J),
    ("Parch string", body(Parch="0"), J),
    ("Parch null", body(Parch=None), J),
    ("Fare negative", body(Fare=-0.01), J),
    ("Fare too large", body(Fare=1e300), J),
    ("Fare null", body(Fare=None), J),
    ("Fare tiny", body(Fare=1e-300), J),
    ("unknown field", body(Name="Braund"), J),
    ("unicode in unknown field", body(**{"Näme\u0000": "x"}), J),
    ("unicode in Sex", body(Sex="m\u00e4le\u0007"), J),
    ("instances empty", json.dumps({"instances": []}), J),
    ("instances 1025", json.dumps({"instances": [OK] * 1025}), J),
    ("instances not array", json.dumps({"instances": OK}), J),
    ("instances null", json.dumps({"instances": None}), J),
    ("instances with a bad passenger", json.dumps({"instances": [OK, {**OK, "Age": -3}]}), J),
    ("instances with a non-object", json.dumps({"instances": [OK, 7]}), J),
    ("instances beside fields", json.dumps({"instances": [OK], "Pclass": 3}), J),
    ("mixed types in batch", json.dumps({"instances": [OK, {**OK, "Fare": "7.25"}]}), J),
    ("duplicate key in batch", '{"instances": [' + body()[:-1] + ', "Sex": "female"}]}', J),
]

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
    for name, raw, content_type in REQUESTS:
        try:
            passengers, _ = parse_request(raw.encode("utf-8", "surrogatepass"), content_type)
            expected = {"status": 200, "count": len(passengers)}
        except ContractError as err:
            expected = {"status": err.status, "field": err.field}
        requests.append({"name": name, "body": raw, "content_type": content_type, **expected})
    features = []
    for passenger in FEATURE_CASES:
        parsed, _ = parse_request(json.dumps(passenger).encode(), J)
        row = pre.transform_passengers(parsed)[0]
        features.append({"passenger": passenger, "features": [float(x) for x in row]})
    return {"preprocess": PREPROCESS, "features": features, "requests": requests}


if __name__ == "__main__":
    out = Path(__file__).with_name("contract.json")
    out.write_text(json.dumps(vectors(), indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {out}")
