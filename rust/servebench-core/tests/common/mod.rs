//! A router over a fake engine, and a one-request client for it.

#![allow(dead_code)]

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use servebench_core::http::{App, router};
use servebench_core::{
    Data, DataType, DataView, Engine, EngineError, INPUT_NAME, ModelInfo, N_FEATURES, OUTPUT_NAME,
    Preprocessor, Tensor, TensorInfo, TensorView,
};
use tower::ServiceExt;

pub const MODELS: [&str; 2] = ["lightgbm_onnx", "pytorch_onnx"];

/// The graph of a Titanic model: features FP32 [-1, 6] -> probability FP32 [-1].
pub fn titanic() -> ModelInfo {
    ModelInfo {
        inputs: vec![TensorInfo::new(
            INPUT_NAME,
            DataType::Fp32,
            vec![-1, N_FEATURES as i64],
        )],
        outputs: vec![TensorInfo::new(OUTPUT_NAME, DataType::Fp32, vec![-1])],
    }
}

static TITANIC: LazyLock<Vec<ModelInfo>> = LazyLock::new(|| vec![titanic(), titanic()]);

/// The record API's probabilities of a feature batch: third class gets 0.25, everyone else 0.75,
/// so answers show which row went where.
fn probabilities(inputs: &[TensorView<'_>]) -> Tensor {
    let DataView::F32(features) = inputs[0].data else {
        panic!("features are FP32")
    };
    let rows = inputs[0].shape[0];
    assert_eq!(features.len(), rows * N_FEATURES);
    Tensor {
        shape: vec![rows],
        data: Data::F32(
            features
                .chunks(N_FEATURES)
                .map(|row| if row[0] == 3.0 { 0.25 } else { 0.75 })
                .collect(),
        ),
    }
}

/// Two Titanic models (see [`probabilities`]).
pub struct FakeEngine;

impl Engine for FakeEngine {
    fn models(&self) -> &[ModelInfo] {
        &TITANIC
    }

    fn infer(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        assert!(model < MODELS.len());
        servebench_core::engine::check_inputs(&TITANIC[model], inputs, outputs)?;
        Ok(vec![probabilities(inputs)])
    }
}

/// The Titanic models, then packs of the given graphs whose every output is zeros of its declared
/// shape, a dynamic dimension the first input's first.
pub struct PackEngine {
    pub infos: Vec<ModelInfo>,
}

impl PackEngine {
    pub fn new(packs: impl IntoIterator<Item = ModelInfo>) -> Self {
        let mut infos = vec![titanic(), titanic()];
        infos.extend(packs);
        Self { infos }
    }
}

impl Engine for PackEngine {
    fn models(&self) -> &[ModelInfo] {
        &self.infos
    }

    fn infer(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        let info = &self.infos[model];
        servebench_core::engine::check_inputs(info, inputs, outputs)?;
        if model < MODELS.len() {
            return Ok(vec![probabilities(inputs)]);
        }
        let batch = inputs.first().map_or(1, |t| t.shape[0]);
        Ok(outputs
            .iter()
            .map(|&i| {
                let out = &info.outputs[i];
                let shape: Vec<usize> = out
                    .shape
                    .iter()
                    .map(|&d| usize::try_from(d).unwrap_or(batch))
                    .collect();
                let n = shape.iter().product();
                Tensor {
                    shape,
                    data: Data::zeros(out.datatype, n),
                }
            })
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
    app_with_packs(engine, &[], preprocess)
}

/// The router over `engine`, whose models are [`MODELS`] and then `packs`.
pub fn app_with_packs(
    engine: impl Engine,
    packs: &[String],
    preprocess: &serde_json::Value,
) -> Router {
    let preprocessor = Preprocessor::from_json(preprocess).expect("preprocess document");
    let models = MODELS.map(String::from).to_vec();
    let app = App::new(
        "rust-test",
        models,
        packs.to_vec(),
        Arc::new(engine),
        preprocessor,
    )
    .expect("an app");
    router(Arc::new(app))
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
