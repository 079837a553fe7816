//! The HTTP layer against a fake engine: routing, methods, limits, headers and bodies.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use servebench_core::http::{App, router};
use servebench_core::{Engine, EngineError, Model, N_FEATURES, Preprocessor};
use tower::ServiceExt;

const OK: &str =
    r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;
const FEMALE: &str =
    r#"{"Pclass": 1, "Sex": "female", "Age": null, "SibSp": 1, "Parch": 0, "Fare": 71.2833}"#;
const LIMIT: usize = 1 << 20;

/// Third class gets 0.25, everyone else 0.75, so answers show which row went where.
struct FakeEngine;

impl Engine for FakeEngine {
    fn predict(&self, _: Model, features: &[f32], rows: usize) -> Result<Vec<f32>, EngineError> {
        assert_eq!(features.len(), rows * N_FEATURES);
        Ok(features
            .chunks(N_FEATURES)
            .map(|row| if row[0] == 3.0 { 0.25 } else { 0.75 })
            .collect())
    }
}

struct BrokenEngine;

impl Engine for BrokenEngine {
    fn predict(&self, _: Model, _: &[f32], rows: usize) -> Result<Vec<f32>, EngineError> {
        Ok(vec![f32::NAN; rows])
    }
}

fn preprocessor() -> Preprocessor {
    let doc = serde_json::json!({
        "features": ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"],
        "sex_mapping": {"female": 0, "male": 1},
        "fill_values": {"Age": 28.0},
        "mean": [0.0, 0.0, 29.5, 0.0, 0.0, 32.1],
        "scale": [1.0, 1.0, 13.0, 1.0, 1.0, 49.7],
        "format_version": 1
    });
    Preprocessor::from_json(&doc).unwrap()
}

fn app_with(engine: impl Engine) -> Router {
    router(Arc::new(App::new(
        "rust-test",
        Arc::new(engine),
        preprocessor(),
    )))
}

fn app() -> Router {
    app_with(FakeEngine)
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    fn error(&self) -> (String, Option<String>) {
        let doc = self.json();
        (
            doc["error"].as_str().expect("error message").to_string(),
            doc["field"].as_str().map(String::from),
        )
    }
}

async fn send(app: Router, request: Request<Body>) -> Reply {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn post(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(uri);
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(body.into()).unwrap()
}

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

fn assert_json_error(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    reply.error();
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
async fn health_allows_only_get() {
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"] {
        let reply = send(app(), empty(method, "/health")).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.headers[header::ALLOW], "GET");
        if method != "HEAD" {
            assert_eq!(reply.error(), ("Method Not Allowed".to_string(), None));
        }
    }
}

#[tokio::test]
async fn predict_allows_only_post_and_checks_method_before_model() {
    for uri in ["/predict/pytorch_onnx", "/predict/no_such_model"] {
        for method in ["GET", "PUT", "DELETE", "PATCH"] {
            let reply = send(app(), empty(method, uri)).await;
            assert_json_error(&reply, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(reply.headers[header::ALLOW], "POST");
        }
    }
}

#[tokio::test]
async fn unknown_model_is_404() {
    for model in ["pytorch", "lightgbm", "nope", "pytorch_onnx%20"] {
        let reply = send(app(), post_json(&format!("/predict/{model}"), OK)).await;
        assert_json_error(&reply, StatusCode::NOT_FOUND);
    }
    let reply = send(app(), post_json("/predict/pytorch", OK)).await;
    assert_eq!(reply.error(), ("unknown model 'pytorch'".to_string(), None));
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
        assert_json_error(&reply, StatusCode::NOT_FOUND);
        assert_eq!(
            reply.error(),
            ("Not Found".to_string(), None),
            "{method} {uri}"
        );
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
async fn body_limit_is_413_with_json() {
    // Declared too large: refused before reading.
    let big = vec![b' '; LIMIT + 1];
    let mut request = post(
        "/predict/pytorch_onnx",
        Some("application/json"),
        big.clone(),
    );
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, (LIMIT + 1).into());
    let reply = send(app(), request).await;
    assert_json_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.error(),
        ("body exceeds 1048576 bytes".to_string(), None)
    );

    // No length given: the limit applies while reading.
    let reply = send(
        app(),
        post(
            "/predict/pytorch_onnx",
            Some("application/json"),
            big.clone(),
        ),
    )
    .await;
    assert_json_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed in chunks.
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

    // Size is checked before the content type.
    let reply = send(
        app(),
        post("/predict/pytorch_onnx", Some("text/plain"), big),
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
    ] {
        let reply = send(
            app(),
            post("/predict/pytorch_onnx", content_type, OK.to_string()),
        )
        .await;
        assert_json_error(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            reply.error(),
            ("Content-Type must be application/json".to_string(), None)
        );
    }
    let reply = send(
        app(),
        post(
            "/predict/pytorch_onnx",
            Some("application/json; charset=utf-8"),
            OK.to_string(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn contract_errors_reach_the_client() {
    let cases = [
        ("", StatusCode::BAD_REQUEST, None),
        (
            r#"{"Age": 1, "Age": 2}"#,
            StatusCode::BAD_REQUEST,
            Some("Age"),
        ),
        ("[1]", StatusCode::UNPROCESSABLE_ENTITY, None),
        (
            r#"{"instances": [{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}, 7]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("instances[1]"),
        ),
    ];
    for (body, status, field) in cases {
        let reply = send(app(), post_json("/predict/pytorch_onnx", body)).await;
        assert_json_error(&reply, status);
        assert_eq!(reply.error().1.as_deref(), field, "{body}");
    }

    // A key with a lone surrogate is quoted back as the same escape, and the body stays UTF-8.
    let body =
        r#"{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 0, "Fare": 7.25, "N\ud800\n": 1}"#;
    let reply = send(app(), post_json("/predict/pytorch_onnx", body)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.body,
        r#"{"error":"unknown field 'N\ud800\n'","field":"N\ud800\n"}"#
    );
}

#[tokio::test]
async fn a_bad_model_answer_is_a_500_not_a_panic() {
    let reply = send(
        app_with(BrokenEngine),
        post_json("/predict/pytorch_onnx", OK),
    )
    .await;
    assert_json_error(&reply, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.error(), ("inference failed".to_string(), None));
}

/// A body that arrives in several chunks with no length known up front, like chunked encoding.
struct Chunked(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.0
                .pop_front()
                .map(|chunk| Ok(http_body::Frame::data(chunk))),
        )
    }
}
