//! The shared vectors in tests/vectors/contract.json, which the Python tests check as well.

use std::path::PathBuf;

use serde_json::Value;
use servebench_core::Preprocessor;
use servebench_core::contract::parse_request;

fn vectors() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/contract.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("contract.json is JSON")
}

#[test]
fn every_request_vector_gets_the_contract_answer() {
    let vectors = vectors();
    let requests = vectors["requests"].as_array().expect("requests");
    assert!(
        requests.len() >= 60,
        "only {} request vectors",
        requests.len()
    );
    let mut failures = Vec::new();
    for case in requests {
        let name = case["name"].as_str().expect("name");
        let body = case["body"].as_str().expect("body");
        let content_type = case["content_type"].as_str().map(str::as_bytes);
        let status = case["status"].as_u64().expect("status");
        let got = match parse_request(body.as_bytes(), content_type) {
            Ok(request) => (200, None, Some(request.passengers.len() as u64)),
            Err(err) => (u64::from(err.status()), err.field_lossy(), None),
        };
        let expected = if status == 200 {
            (200, None, case["count"].as_u64())
        } else {
            (status, case["field"].as_str().map(String::from), None)
        };
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_feature_vector_matches_bit_for_bit() {
    let vectors = vectors();
    let preprocessor = Preprocessor::from_json(&vectors["preprocess"]).expect("preprocess doc");
    let cases = vectors["features"].as_array().expect("features");
    assert!(!cases.is_empty());
    for case in cases {
        let body = serde_json::to_vec(&case["passenger"]).unwrap();
        let request = parse_request(&body, Some(b"application/json")).expect("valid passenger");
        let got = preprocessor.transform(&request.passengers);
        let expected: Vec<f64> = case["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // Python wrote float(np.float32), so the expected values are exactly representable.
        let got: Vec<f64> = got.iter().map(|&f| f64::from(f)).collect();
        assert_eq!(got, expected, "passenger {}", case["passenger"]);
    }
}
