//! The routes of docs/api.md on axum.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::contract::{ApiError, MAX_BODY_BYTES, Payload};
use crate::engine::{self, Engine};
use crate::preprocess::Preprocessor;
use crate::serve::REQUEST_TIMEOUT;

/// Everything a handler needs; shared read-only by all workers.
pub struct App {
    id: String,
    /// Sorted; a model's engine index is its position here.
    models: Vec<String>,
    engine: Arc<dyn Engine>,
    preprocessor: Preprocessor,
}

impl App {
    /// `models` must be in the order the engine loaded them (sorted by name).
    pub fn new(
        id: impl Into<String>,
        models: Vec<String>,
        engine: Arc<dyn Engine>,
        preprocessor: Preprocessor,
    ) -> Self {
        Self {
            id: id.into(),
            models,
            engine,
            preprocessor,
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/predict/{model}", post(predict))
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

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// The model named in the path, as the engine's index. Extracted before the body, so an
/// unknown model is a 404 whatever the body holds.
struct Model(usize);

impl FromRequestParts<Arc<App>> for Model {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let name = Path::<String>::from_request_parts(parts, app)
            .await
            .map(|Path(name)| name)
            .unwrap_or_default();
        match app.models.iter().position(|m| *m == name) {
            Some(index) => Ok(Model(index)),
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
    let probabilities = app
        .engine
        .predict(model, &features, rows)
        .and_then(|p| engine::check_output(&p, rows).map(|()| p))
        .map_err(|e| {
            eprintln!("{}: inference failed on {}: {e}", app.id, app.models[model]);
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
