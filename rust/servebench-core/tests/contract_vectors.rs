//! The shared vectors in tests/vectors/contract.json, which the Python tests check as well:
//! every request vector goes through the real router (over a fake engine), and every feature
//! vector through the preprocessing.

mod common;

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use common::{FakeEngine, app_with, post, send};
use serde::Deserialize;
use serde_json::Value;
use servebench_core::{Passenger, Preprocessor};

#[derive(Deserialize)]
struct Vectors {
    /// Only in the shared file: the small sample of the checks' own test has none.
    limits: Option<Limits>,
    preprocess: Value,
    features: Vec<FeatureCase>,
    requests: Vec<RequestCase>,
}

/// The contract's limits as the Python side holds them.
#[derive(Deserialize, Debug, PartialEq)]
struct Limits {
    fields: Vec<String>,
    max_body_bytes: usize,
    max_batch: usize,
    age_max: f64,
    fare_max: f64,
    count_max: i64,
}

#[derive(Deserialize)]
struct FeatureCase {
    passenger: Passenger,
    features: Vec<f64>,
}

#[derive(Deserialize)]
struct RequestCase {
    name: String,
    body: String,
    content_type: Option<String>,
    status: Vec<u16>,
    /// Only present when the field must be checked; `Some(None)` means it must be null.
    #[serde(default, deserialize_with = "present")]
    field: Option<Option<String>>,
    count: Option<usize>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn load(path: &Path) -> Vectors {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/contract.json")
}

/// Every failure, one line each, so that one run shows all of them.
async fn check_requests(vectors: &Vectors) -> Vec<String> {
    let mut failures = Vec::new();
    for case in &vectors.requests {
        let app = app_with(FakeEngine, &vectors.preprocess);
        let request = post(
            "/predict/pytorch_onnx",
            case.content_type.as_deref(),
            case.body.clone(),
        );
        let reply = send(app, request).await;
        let name = &case.name;
        if !case.status.contains(&reply.status.as_u16()) {
            failures.push(format!(
                "{name}: status {} not in {:?}: {}",
                reply.status, case.status, reply.body
            ));
            continue;
        }
        if reply.status == StatusCode::OK {
            let doc = reply.json();
            let count = match doc.get("predictions") {
                Some(predictions) => predictions.as_array().map_or(0, Vec::len),
                None => usize::from(doc.get("probability").is_some()),
            };
            if case.count.is_some_and(|n| n != count) {
                failures.push(format!(
                    "{name}: {count} predictions, expected {:?}",
                    case.count
                ));
            }
        } else if let Some(field) = &case.field {
            let got = reply.error().1;
            if got != *field {
                failures.push(format!(
                    "{name}: field {got:?}, expected {field:?}: {}",
                    reply.body
                ));
            }
        }
    }
    failures
}

fn check_features(vectors: &Vectors) -> Vec<String> {
    let preprocessor = Preprocessor::from_json(&vectors.preprocess).expect("preprocess document");
    let mut failures = Vec::new();
    for case in &vectors.features {
        // Python wrote float(np.float32), so the expected values are exactly representable.
        let got: Vec<f64> = preprocessor
            .features(&case.passenger)
            .map(f64::from)
            .to_vec();
        if got != case.features {
            failures.push(format!(
                "{:?}: {got:?}, expected {:?}",
                case.passenger, case.features
            ));
        }
    }
    failures
}

#[tokio::test]
async fn every_request_vector_gets_an_allowed_answer() {
    let vectors = load(&shared());
    assert!(
        vectors.requests.len() >= 20,
        "only {} request vectors",
        vectors.requests.len()
    );
    let failures = check_requests(&vectors).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_limits_are_the_python_contracts() {
    use servebench_core::contract::{
        AGE_MAX, COUNT_MAX, FARE_MAX, FIELDS, MAX_BATCH, MAX_BODY_BYTES,
    };
    let ours = Limits {
        fields: FIELDS.iter().map(|f| f.to_string()).collect(),
        max_body_bytes: MAX_BODY_BYTES,
        max_batch: MAX_BATCH,
        age_max: AGE_MAX,
        fare_max: FARE_MAX,
        count_max: COUNT_MAX,
    };
    assert_eq!(load(&shared()).limits, Some(ours));
}

#[test]
fn every_feature_vector_matches_bit_for_bit() {
    let vectors = load(&shared());
    assert!(!vectors.features.is_empty());
    let failures = check_features(&vectors);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The checks themselves, on a small file in the same schema with a wrong answer planted in it.
#[tokio::test]
async fn the_checks_catch_wrong_answers() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/contract-sample.json");
    let vectors = load(&path);
    let failures = check_requests(&vectors).await;
    let names: Vec<&str> = failures
        .iter()
        .map(|f| f.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "planted wrong status",
            "planted wrong field",
            "planted wrong count"
        ],
        "{failures:#?}"
    );
    let failures = check_features(&vectors);
    assert_eq!(failures.len(), 1, "{failures:#?}");
}

/// The one-pass reader of the common body answers exactly as the full path does, wherever it
/// answers at all: on every request vector, and on bodies where the two could part (duplicates,
/// arrays for objects, escapes, integral floats, keys out of order).
#[test]
fn the_one_pass_reader_agrees_with_the_full_path() {
    use servebench_core::Payload;
    const OK: &str =
        r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;
    let mut bodies: Vec<String> = load(&shared())
        .requests
        .into_iter()
        .map(|case| case.body)
        .collect();
    bodies.extend(
        [
            OK,
            r#"{"Fare": 7, "Parch": 0, "SibSp": 1, "Age": null, "Sex": "female", "Pclass": 1.0}"#,
            r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7.25}"#,
            r#"{"P\u0063lass": 3, "Sex": "m\u0061le", "SibSp": 1, "Parch": 0, "Fare": 1e2}"#,
            r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7.25, "Pclass": 2}"#,
            r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7.25, "P\u0063lass": 9}"#,
            r#"[3, "male", 22.0, 1, 0, 7.25]"#,
            r#"{"instances": [[3, "male", 22.0, 1, 0, 7.25]]}"#,
            r#"{"instances": [], "Pclass": 1}"#,
            r#"{"Pclass": 1, "instances": []}"#,
            r#"{"instances": [{"Pclass": 1, "instances": []}]}"#,
            r#"{"instances": 3}"#,
            r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": -1}"#,
            r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7.25} x"#,
            r#"  {"Pclass": -0, "Sex": "male", "SibSp": 1e0, "Parch": 0, "Fare": 18446744073709551616}  "#,
        ]
        .map(String::from),
    );
    for rows in [1, 2, 1024, 1025] {
        bodies.push(format!(
            r#"{{"instances": [{}]}}"#,
            vec![OK; rows].join(",")
        ));
    }
    let mut fast = 0;
    for body in &bodies {
        let Some(payload) = Payload::from_slice(body.as_bytes()) else {
            continue;
        };
        fast += 1;
        let full = axum::Json::<serde_json::Value>::from_bytes(body.as_bytes())
            .map_err(|e| format!("{e}"))
            .and_then(|axum::Json(value)| Payload::from_value(value).map_err(|e| format!("{e:?}")));
        let one_pass = payload.checked().map_err(|e| format!("{e:?}"));
        assert_eq!(one_pass, full, "{body}");
    }
    assert!(fast >= 8, "the one-pass reader took only {fast} bodies");
}
