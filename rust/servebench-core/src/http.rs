//! The routes of docs/api.md on axum.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, HeaderName};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tower::{Layer, Service};

use crate::contract::{ApiError, Payload, read_body};
use crate::engine::{Engine, RecordModel};
use crate::preprocess::{N_FEATURES, Preprocessor};
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
    /// The body of every /health answer: nothing in it changes while the server runs.
    health: Bytes,
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
        let id = id.into();
        let health = serde_json::to_vec(&Health {
            status: "ok",
            framework: &id,
            models: &models,
        })
        .map_err(|e| format!("cannot write the /health body: {e}"))?;
        Ok(Self {
            id,
            models,
            records,
            v2,
            engine,
            preprocessor,
            health: health.into(),
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
    let mut router = Router::new().route("/health", get(health));
    // Each model's own route spares the common request a path parameter (a string and its
    // lookup); names a route cannot hold as they are, and percent-encoded ones, still reach
    // `predict_named`.
    for (position, name) in app.models.iter().enumerate() {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if !name.is_empty() && name.chars().all(plain) {
            let handler = move |State(app): State<Arc<App>>, ValidBody(payload): ValidBody| {
                predict(app, position, payload)
            };
            router = router.route(&format!("/predict/{name}"), post(handler));
        }
    }
    router
        .route("/predict/{model}", post(predict_named))
        .merge(v2::routes())
        .fallback(not_found)
        // After the routes: it applies to those registered before it. axum still sets Allow.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Timed)
        .with_state(app)
}

static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Around every route: `Server-Timing: app;dur=<ms>` on every response the router makes (the
/// server's own time, so that a benchmark can tell it from the transport's), and a deadline
/// that cuts off a request whose body trickles in (the header timeout only covers the head).
/// One hand-written layer rather than two `middleware::from_fn`, which box the next service and
/// the future on every request. Behind `serve::serve` the deadline is the connection watchdog's,
/// so a request never touches the timer wheel, and the layer's two clock reads are also the
/// watchdog's (`serve::request_started`, `serve::response_ready`); driven directly, the router
/// arms a timer of its own, and only when the request cannot be answered on its first poll.
#[derive(Debug, Clone, Copy)]
struct Timed;

impl<S> Layer<S> for Timed {
    type Service = TimedService<S>;

    fn layer(&self, inner: S) -> TimedService<S> {
        TimedService(inner)
    }
}

#[derive(Debug, Clone)]
struct TimedService<S>(S);

impl<S> Service<Request> for TimedService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let start = Instant::now();
        crate::serve::request_started(start);
        TimedFuture {
            start,
            inner: self.0.call(request),
            deadline: None,
        }
    }
}

pin_project_lite::pin_project! {
    struct TimedFuture<F> {
        start: Instant,
        #[pin]
        inner: F,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F> Future for TimedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => {
                // On a connection of `serve::serve`, its watchdog keeps the deadline.
                let expired = match crate::serve::request_expired() {
                    Some(expired) => expired,
                    None => {
                        let start = *this.start;
                        let deadline = this.deadline.get_or_insert_with(|| {
                            Box::pin(tokio::time::sleep_until((start + REQUEST_TIMEOUT).into()))
                        });
                        deadline.as_mut().poll(cx).is_ready()
                    }
                };
                if !expired {
                    return Poll::Pending;
                }
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out").into_response()
            }
        };
        let ready = Instant::now();
        crate::serve::response_ready(ready);
        Poll::Ready(Ok(with_server_timing(response, ready - *this.start)))
    }
}

/// The header value as `format!("app;dur={:.3}", ms)` would write it, from whole microseconds,
/// without a `String`, float formatting or the formatting machinery: it is on every response.
fn with_server_timing(mut response: Response, elapsed: Duration) -> Response {
    const PREFIX: &[u8] = b"app;dur=";
    let micros = u64::try_from(elapsed.as_nanos().saturating_add(500) / 1000).unwrap_or(u64::MAX);
    // The longest value: u64::MAX microseconds is 20 digits, and the decimal point.
    let mut buffer = [0u8; PREFIX.len() + 21];
    let mut at = buffer.len();
    let mut rest = micros;
    for digit in 0.. {
        if digit == 3 {
            at -= 1;
            buffer[at] = b'.';
        }
        at -= 1;
        buffer[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 && digit >= 3 {
            break;
        }
    }
    at -= PREFIX.len();
    buffer[at..at + PREFIX.len()].copy_from_slice(PREFIX);
    if let Ok(value) = HeaderValue::from_bytes(&buffer[at..]) {
        response.headers_mut().insert(SERVER_TIMING.clone(), value);
    }
    response
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    framework: &'a str,
    models: &'a [String],
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let json = HeaderValue::from_static("application/json");
    ([(CONTENT_TYPE, json)], app.health.clone()).into_response()
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

/// The record model named in the path, by its place in the list. Extracted before the body, so
/// an unknown model is a 404 whatever the body holds.
struct Model(usize);

impl FromRequestParts<Arc<App>> for Model {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let name = Path::<String>::from_request_parts(parts, app)
            .await
            .map(|Path(name)| name)
            .unwrap_or_default();
        match app.models.iter().position(|m| *m == name) {
            Some(position) => Ok(Model(position)),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown model '{name}'"),
            )),
        }
    }
}

/// A request body that passed the contract, with axum's `Json` answers for the content type,
/// the size and the syntax. [`Payload::from_slice`] reads a good body in one pass; any other goes
/// the way axum's `Json::<Value>` reads it, then through [`Payload::from_value`], which names the
/// field at fault.
struct ValidBody(Payload);

impl<S: Send + Sync> FromRequest<S> for ValidBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(JsonRejection::from(
                axum::extract::rejection::MissingJsonContentType::default(),
            )
            .into());
        }
        let bytes = read_body(request.into_body()).await?;
        if let Some(payload) = Payload::from_slice(&bytes) {
            return payload.checked().map(ValidBody);
        }
        let Json(value) = Json::<Value>::from_bytes(&bytes)?;
        Payload::from_value(value).map(ValidBody)
    }
}

/// axum's own test for its `Json` extractor (`application/json`, with parameters, or any
/// `application/*+json`), with the common exact header answered without parsing it.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    if content_type.as_bytes() == b"application/json" {
        return true;
    }
    let Ok(content_type) = content_type.to_str() else {
        return false;
    };
    let Ok(mime) = content_type.parse::<mime::Mime>() else {
        return false;
    };
    mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|name| name == "json"))
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

async fn predict_named(
    State(app): State<Arc<App>>,
    Model(position): Model,
    ValidBody(payload): ValidBody,
) -> Result<Response, ApiError> {
    predict(app, position, payload).await
}

async fn predict(app: Arc<App>, position: usize, payload: Payload) -> Result<Response, ApiError> {
    let model = app.records[position];
    let passengers = payload.passengers();
    let rows = passengers.len();
    // One passenger's features stay on the stack.
    let single;
    let batch;
    let features: &[f32] = match passengers {
        [passenger] => {
            single = app.preprocessor.features(passenger);
            &single
        }
        _ => {
            batch = app.preprocessor.transform(passengers);
            &batch
        }
    };
    debug_assert_eq!(features.len(), rows * N_FEATURES);
    // Inline on the tokio worker: a row takes microseconds, less than a hop to the blocking
    // pool and back. The slowest case, tract's tree ensemble on a full batch of 1024, holds the
    // worker for about 1.5 ms.
    let probabilities = model.predict(&*app.engine, features, rows).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_is_written_as_milliseconds_with_three_decimals() {
        let cases = [
            (0, "app;dur=0.000"),
            (499, "app;dur=0.000"),
            (500, "app;dur=0.001"),
            (12_345, "app;dur=0.012"),
            (999_999, "app;dur=1.000"),
            (1_234_567, "app;dur=1.235"),
            (31_000_000_000, "app;dur=31000.000"),
        ];
        for (nanos, want) in cases {
            let response = with_server_timing(
                Response::new(Default::default()),
                Duration::from_nanos(nanos),
            );
            assert_eq!(response.headers()["server-timing"], want, "{nanos} ns");
        }
        let longest = with_server_timing(Response::new(Default::default()), Duration::MAX);
        let value = longest.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            value.starts_with("app;dur=") && value.contains('.'),
            "{value}"
        );
    }
}
