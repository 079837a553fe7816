//! A router over a fake engine, and a one-request client for it.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use servebench_core::http::{App, router};
use servebench_core::{Engine, EngineError, N_FEATURES, Preprocessor};
use tower::ServiceExt;

pub const MODELS: [&str; 2] = ["lightgbm_onnx", "pytorch_onnx"];

/// Third class gets 0.25, everyone else 0.75, so answers show which row went where.
pub struct FakeEngine;

impl Engine for FakeEngine {
    fn predict(
        &self,
        model: usize,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        assert!(model < MODELS.len());
        assert_eq!(features.len(), rows * N_FEATURES);
        Ok(features
            .chunks(N_FEATURES)
            .map(|row| if row[0] == 3.0 { 0.25 } else { 0.75 })
            .collect())
    }
}

pub fn preprocess_json() -> serde_json::Value {
    serde_json::json!({
        "features": ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"],
        "sex_mapping": {"female": 0, "male": 1},
        "fill_values": {"Age": 28.0},
        "mean": [0.0, 0.0, 29.5, 0.0, 0.0, 32.1],
        "scale": [1.0, 1.0, 13.0, 1.0, 1.0, 49.7],
        "format_version": 1
    })
}

pub fn app_with(engine: impl Engine, preprocess: &serde_json::Value) -> Router {
    let preprocessor = Preprocessor::from_json(preprocess).expect("preprocess document");
    let models = MODELS.map(String::from).to_vec();
    router(Arc::new(App::new(
        "rust-test",
        models,
        Arc::new(engine),
        preprocessor,
    )))
}

pub fn app() -> Router {
    app_with(FakeEngine, &preprocess_json())
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// The error body's message and field; panics unless the body has exactly that shape.
    pub fn error(&self) -> (String, Option<String>) {
        let doc = self.json();
        let keys: Vec<&String> = doc.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["error", "field"], "{}", self.body);
        let message = doc["error"].as_str().expect("error message").to_string();
        (message, doc["field"].as_str().map(String::from))
    }
}

pub async fn send(app: Router, request: Request<Body>) -> Reply {
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

pub fn post(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(uri);
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(body.into()).expect("request")
}
