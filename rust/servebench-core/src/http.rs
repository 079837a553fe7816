//! The routes of docs/api.md on axum.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::contract::{ApiError, MAX_BODY_BYTES, Payload};
use crate::engine::{Engine, RecordModel};
use crate::preprocess::Preprocessor;
use crate::serve::REQUEST_TIMEOUT;
use crate::v2::{self, V2Error};

/// Everything a handler needs; shared read-only by all workers.
pub struct App {
    id: String,
    /// The record API's models, sorted; each with its engine index and output.
    models: Vec<String>,
    records: Vec<RecordModel>,
    /// Every model the Open Inference Protocol serves (the record API's and the packs), sorted by
    /// name, with its engine index.
    v2: Vec<(String, usize)>,
    engine: Arc<dyn Engine>,
    preprocessor: Preprocessor,
}

impl App {
    /// `models` are the record API's models, engine indices `0..models.len()`, sorted by name;
    /// `packs` the models served over the Open Inference Protocol only, the indices after them.
    /// Fails, naming the model, when a record model's graph is not the record API's (see
    /// [`RecordModel::new`]) or a name is used twice.
    pub fn new(
        id: impl Into<String>,
        models: Vec<String>,
        packs: Vec<String>,
        engine: Arc<dyn Engine>,
        preprocessor: Preprocessor,
    ) -> Result<Self, String> {
        let infos = engine.models();
        if infos.len() != models.len() + packs.len() {
            return Err(format!(
                "the engine has {} models for {} names",
                infos.len(),
                models.len() + packs.len()
            ));
        }
        let records = models
            .iter()
            .enumerate()
            .map(|(index, name)| {
                RecordModel::new(&infos[index], index).map_err(|e| format!("model {name}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut v2: Vec<(String, usize)> = models
            .iter()
            .chain(&packs)
            .cloned()
            .enumerate()
            .map(|(index, name)| (name, index))
            .collect();
        v2.sort();
        if let Some(pair) = v2.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("model {}: the name is used twice", pair[0].0));
        }
        Ok(Self {
            id: id.into(),
            models,
            records,
            v2,
            engine,
            preprocessor,
        })
    }

    /// The server id, which /health calls the framework.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The record API's models, in the order of their names.
    pub fn record_models(&self) -> &[RecordModel] {
        &self.records
    }

    /// A model the Open Inference Protocol serves: its engine index.
    pub fn v2_model(&self, name: &str) -> Option<usize> {
        self.v2
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.v2[i].1)
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/predict/{model}", post(predict))
        .merge(v2::routes())
        .fallback(not_found)
        // After the routes: it applies to those registered before it. axum still sets Allow.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(server_timing))
        .with_state(app)
}

/// `Server-Timing: app;dur=<ms>` on every response the router makes: the server's own time,
/// so that a benchmark can tell it from the transport's.
async fn server_timing(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let mut response = next.run(request).await;
    let timing = format!("app;dur={:.3}", start.elapsed().as_secs_f64() * 1e3);
    if let Ok(value) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Cuts off a request whose body trickles in (the header timeout only covers the head).
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
    }
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    framework: &'a str,
    models: &'a [String],
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let health = Health {
        status: "ok",
        framework: &app.id,
        models: &app.models,
    };
    Json(health).into_response()
}

/// Under /v2 the Open Inference Protocol's error body, `{"error": ...}`; elsewhere the record
/// API's.
async fn not_found(uri: Uri) -> Response {
    if v2::is_v2_path(uri.path()) {
        return V2Error::new(StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    ApiError::new(StatusCode::NOT_FOUND, "Not Found").into_response()
}

async fn method_not_allowed(uri: Uri) -> Response {
    let message = "Method Not Allowed";
    if v2::is_v2_path(uri.path()) {
        return V2Error::new(StatusCode::METHOD_NOT_ALLOWED, message).into_response();
    }
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message).into_response()
}

/// The record model named in the path. Extracted before the body, so an unknown model is a 404
/// whatever the body holds.
struct Model(RecordModel);

impl FromRequestParts<Arc<App>> for Model {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let name = Path::<String>::from_request_parts(parts, app)
            .await
            .map(|Path(name)| name)
            .unwrap_or_default();
        match app.models.iter().position(|m| *m == name) {
            Some(position) => Ok(Model(app.records[position])),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown model '{name}'"),
            )),
        }
    }
}

/// A request body that passed the contract: axum's `Json` for syntax, content type and size,
/// then [`Payload::from_value`] for shape and ranges.
struct ValidBody(Payload);

impl<S: Send + Sync> FromRequest<S> for ValidBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(request, state).await?;
        Payload::from_value(value).map(ValidBody)
    }
}

#[derive(Serialize)]
struct Prediction {
    survived: u8,
    probability: f64,
}

impl Prediction {
    fn new(p: f32) -> Self {
        Self {
            survived: u8::from(p >= 0.5),
            // Widened exactly, as Python's float(np.float32(p)).
            probability: f64::from(p),
        }
    }
}

#[derive(Serialize)]
struct Predictions {
    predictions: Vec<Prediction>,
}

async fn predict(
    State(app): State<Arc<App>>,
    Model(model): Model,
    ValidBody(payload): ValidBody,
) -> Result<Response, ApiError> {
    let passengers = payload.passengers();
    let rows = passengers.len();
    let features = app.preprocessor.transform(passengers);
    // Inline on the tokio worker: a row takes microseconds, less than a hop to the blocking
    // pool and back. The slow case is tract's tree ensemble (about 0.4 ms a row), which then
    // holds this worker for the whole batch.
    let probabilities = model.predict(&*app.engine, &features, rows).map_err(|e| {
        let name = &app.models[model.index];
        eprintln!("{}: inference failed on {name}: {e}", app.id);
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference failed")
    })?;
    Ok(match payload {
        Payload::Single(_) => Json(Prediction::new(probabilities[0])).into_response(),
        Payload::Batch(_) => Json(Predictions {
            predictions: probabilities.into_iter().map(Prediction::new).collect(),
        })
        .into_response(),
    })
}
