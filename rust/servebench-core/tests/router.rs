//! The HTTP layer against a fake engine: routing, methods, limits, headers and bodies.

mod common;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use common::{FakeEngine, Reply, app, app_with, post, preprocess_json, send};
use servebench_core::{Data, Engine, EngineError, ModelInfo, Tensor, TensorView};

const OK: &str =
    r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;
const FEMALE: &str =
    r#"{"Pclass": 1, "Sex": "female", "Age": null, "SibSp": 1, "Parch": 0, "Fare": 71.2833}"#;
const LIMIT: usize = 1 << 20;

fn post_json(uri: &str, body: &str) -> Request<Body> {
    post(uri, Some("application/json"), body.to_string())
}

fn empty(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

fn assert_server_timing(reply: &Reply) {
    let value = reply.headers["server-timing"].to_str().unwrap();
    let ms = value
        .strip_prefix("app;dur=")
        .unwrap_or_else(|| panic!("{value}"));
    let (whole, decimals) = ms.split_once('.').unwrap_or_else(|| panic!("{value}"));
    assert!(
        !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
        "{value}"
    );
    assert!(
        decimals.len() == 3 && decimals.bytes().all(|b| b.is_ascii_digit()),
        "{value}"
    );
}

/// A JSON error body with the given status, and Server-Timing like every response.
fn assert_json_error(reply: &Reply, status: StatusCode) -> (String, Option<String>) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_server_timing(reply);
    reply.error()
}

#[tokio::test]
async fn health() {
    let reply = send(app(), empty("GET", "/health")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        r#"{"status":"ok","framework":"rust-test","models":["lightgbm_onnx","pytorch_onnx"]}"#
    );
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_server_timing(&reply);
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let cases = [
        ("/health", "GET"),
        ("/predict/pytorch_onnx", "POST"),
        // The method is checked before the model name.
        ("/predict/no_such_model", "POST"),
    ];
    for (uri, allowed) in cases {
        for method in ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            if method == allowed {
                continue;
            }
            let reply = send(app(), empty(method, uri)).await;
            let error = assert_json_error(&reply, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(error, ("Method Not Allowed".to_string(), None));
            let allow = reply.headers[header::ALLOW].to_str().unwrap();
            assert!(
                allow.split(',').any(|m| m == allowed),
                "{method} {uri}: {allow}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_model_is_404() {
    for model in ["pytorch", "lightgbm", "nope", "pytorch_onnx%20", "%FF"] {
        let reply = send(app(), post_json(&format!("/predict/{model}"), OK)).await;
        assert_json_error(&reply, StatusCode::NOT_FOUND);
    }
    let reply = send(app(), post_json("/predict/pytorch", OK)).await;
    assert_eq!(reply.error(), ("unknown model 'pytorch'".to_string(), None));
    // The model is checked before the body.
    let reply = send(app(), post("/predict/nope", None, "not json")).await;
    assert_json_error(&reply, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_path_is_404() {
    for (method, uri) in [
        ("GET", "/"),
        ("GET", "/health/"),
        ("GET", "/healthz"),
        ("POST", "/predict"),
        ("POST", "/predict/"),
        ("POST", "/predict/pytorch_onnx/extra"),
        ("GET", "/docs"),
    ] {
        let reply = send(app(), empty(method, uri)).await;
        let error = assert_json_error(&reply, StatusCode::NOT_FOUND);
        assert_eq!(error, ("Not Found".to_string(), None), "{method} {uri}");
    }
}

#[tokio::test]
async fn single_prediction() {
    let reply = send(app(), post_json("/predict/pytorch_onnx", OK)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, r#"{"survived":0,"probability":0.25}"#);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_server_timing(&reply);

    let reply = send(app(), post_json("/predict/lightgbm_onnx", FEMALE)).await;
    assert_eq!(reply.body, r#"{"survived":1,"probability":0.75}"#);
}

#[tokio::test]
async fn batch_prediction_keeps_order() {
    let body = format!(r#"{{"instances": [{OK}, {FEMALE}, {OK}]}}"#);
    let reply = send(app(), post_json("/predict/lightgbm_onnx", &body)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        r#"{"predictions":[{"survived":0,"probability":0.25},{"survived":1,"probability":0.75},{"survived":0,"probability":0.25}]}"#
    );
    assert_server_timing(&reply);
}

#[tokio::test]
async fn batch_limits() {
    let batch = |n: usize| format!(r#"{{"instances": [{}]}}"#, vec![OK; n].join(","));
    let reply = send(app(), post_json("/predict/pytorch_onnx", &batch(1024))).await;
    assert_eq!(reply.json()["predictions"].as_array().unwrap().len(), 1024);
    for n in [0, 1025] {
        let reply = send(app(), post_json("/predict/pytorch_onnx", &batch(n))).await;
        let (_, field) = assert_json_error(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field.as_deref(), Some("instances"));
    }
}

#[tokio::test]
async fn body_limit_is_413_with_json() {
    let big = vec![b' '; LIMIT + 1];
    let reply = send(
        app(),
        post("/predict/pytorch_onnx", Some("application/json"), big),
    )
    .await;
    let error = assert_json_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error, ("body exceeds 1048576 bytes".to_string(), None));

    // Streamed in chunks with no length known up front, like chunked encoding.
    let chunks = (0..=16)
        .map(|_| Bytes::from(vec![b' '; LIMIT / 16]))
        .collect();
    let body = Body::new(Chunked(chunks));
    let reply = send(
        app(),
        post("/predict/pytorch_onnx", Some("application/json"), body),
    )
    .await;
    assert_json_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn exactly_one_mebibyte_is_accepted() {
    let mut body = OK.as_bytes().to_vec();
    body.resize(LIMIT, b' ');
    let reply = send(
        app(),
        post("/predict/pytorch_onnx", Some("application/json"), body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn content_type_is_415() {
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some(""),
        Some("application/json2"),
    ] {
        let reply = send(
            app(),
            post("/predict/pytorch_onnx", content_type, OK.to_string()),
        )
        .await;
        let error = assert_json_error(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            error,
            ("Content-Type must be application/json".to_string(), None)
        );
    }
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let reply = send(
            app(),
            post("/predict/pytorch_onnx", Some(content_type), OK.to_string()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{content_type}");
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for body in [
        String::new(),
        "{".into(),
        r#"{"Pclass": 3,}"#.into(),
        r#"{"Fare": NaN}"#.into(),
        r#"{"Fare": Infinity}"#.into(),
        r#"{"Fare": 1e400}"#.into(),
        r#"{"Sex": "\ud800"}"#.into(),
        format!("{OK} {OK}"),
        deep(200),
    ] {
        let reply = send(app(), post_json("/predict/pytorch_onnx", &body)).await;
        let (message, field) = assert_json_error(&reply, StatusCode::BAD_REQUEST);
        assert!(message.starts_with("malformed JSON"), "{message}");
        assert_eq!(field, None);
    }
    // Within serde_json's nesting limit, a deep body is valid JSON of the wrong shape.
    let reply = send(app(), post_json("/predict/pytorch_onnx", &deep(100))).await;
    assert_json_error(&reply, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn integral_floats_are_integers() {
    let body = OK.replace(r#""Pclass": 3"#, r#""Pclass": 3.0"#);
    let reply = send(app(), post_json("/predict/pytorch_onnx", &body)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = OK.replace(r#""Pclass": 3"#, r#""Pclass": 2.5"#);
    let reply = send(app(), post_json("/predict/pytorch_onnx", &body)).await;
    let (_, field) = assert_json_error(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("Pclass"));
}

#[tokio::test]
async fn invalid_fields_are_422_with_their_path() {
    let cases = [
        ("[1]", None),
        (r#"{"Age": 1, "Age": 2}"#, Some("Pclass")),
        (r#"{"Pclass": 2.5}"#, Some("Pclass")),
        (
            r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7.25, "Cabin": "C85"}"#,
            Some("Cabin"),
        ),
        (
            &format!(r#"{{"instances": [{OK}, 7]}}"#),
            Some("instances[1]"),
        ),
        (
            &format!(r#"{{"instances": [{OK}, {}]}}"#, OK.replace("22.0", "201")),
            Some("instances[1].Age"),
        ),
        (
            &format!(r#"{{"instances": [{OK}], "Pclass": 1}}"#),
            Some("Pclass"),
        ),
    ];
    for (body, field) in cases {
        let reply = send(app(), post_json("/predict/pytorch_onnx", body)).await;
        let error = assert_json_error(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.1.as_deref(), field, "{body}");
    }
}

struct BrokenEngine;

impl Engine for BrokenEngine {
    fn models(&self) -> &[ModelInfo] {
        FakeEngine.models()
    }

    fn infer(
        &self,
        _: usize,
        inputs: &[TensorView<'_>],
        _: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        let rows = inputs[0].shape[0];
        Ok(vec![Tensor {
            shape: vec![rows],
            data: Data::F32(vec![f32::NAN; rows]),
        }])
    }
}

#[tokio::test]
async fn a_bad_model_answer_is_a_500_not_a_panic() {
    let app = app_with(BrokenEngine, &preprocess_json());
    let reply = send(app, post_json("/predict/pytorch_onnx", OK)).await;
    let error = assert_json_error(&reply, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error, ("inference failed".to_string(), None));
}

/// A body that arrives in several chunks with no length known up front.
struct Chunked(VecDeque<Bytes>);

impl axum::body::HttpBody for Chunked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(
            self.0
                .pop_front()
                .map(|chunk| Ok(hyper::body::Frame::data(chunk))),
        )
    }
}
