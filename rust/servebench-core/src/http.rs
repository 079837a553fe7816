//! The HTTP surface of docs/api.md on axum.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::contract::{self, MAX_BODY_BYTES, error_json};
use crate::engine::{self, Engine, Model};
use crate::preprocess::Preprocessor;

/// Everything a request handler needs; shared read-only by all workers.
pub struct App {
    framework: &'static str,
    engine: Arc<dyn Engine>,
    preprocessor: Preprocessor,
    health_body: Bytes,
}

impl App {
    pub fn new(
        framework: &'static str,
        engine: Arc<dyn Engine>,
        preprocessor: Preprocessor,
    ) -> Self {
        let models = serde_json::to_string(&Model::ALL.map(Model::name)).unwrap_or_default();
        let framework_json = serde_json::to_string(framework).unwrap_or_default();
        let health = format!(r#"{{"status":"ok","framework":{framework_json},"models":{models}}}"#);
        Self {
            framework,
            engine,
            preprocessor,
            health_body: Bytes::from(health),
        }
    }

    pub fn framework(&self) -> &'static str {
        self.framework
    }
}

/// Routes are registered for every method and the handlers answer 405 themselves: axum's own
/// 405 has an empty body, and its GET routes also answer HEAD, which the contract does not allow.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", any(health))
        .route("/predict/{model}", any(predict))
        .fallback(not_found)
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>, method: Method) -> Response {
    let start = Instant::now();
    if method != Method::GET {
        return method_not_allowed("GET", start);
    }
    respond(StatusCode::OK, app.health_body.clone(), start)
}

async fn not_found() -> Response {
    let start = Instant::now();
    error(StatusCode::NOT_FOUND, b"Not Found", start)
}

async fn predict(
    State(app): State<Arc<App>>,
    model: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let start = Instant::now();
    if request.method() != Method::POST {
        return method_not_allowed("POST", start);
    }
    let model = match model {
        Ok(Path(name)) => match Model::from_name(&name) {
            Some(model) => model,
            None => {
                let message = format!("unknown model '{name}'");
                return error(StatusCode::NOT_FOUND, message.as_bytes(), start);
            }
        },
        Err(_) => return error(StatusCode::NOT_FOUND, b"unknown model", start),
    };

    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return contract_error(&contract::body_too_large(), start);
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return contract_error(&contract::body_too_large(), start);
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                b"could not read the request body",
                start,
            );
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes);

    let request = match contract::parse_request(&body, content_type) {
        Ok(request) => request,
        Err(err) => return contract_error(&err, start),
    };
    let rows = request.passengers.len();
    let features = app.preprocessor.transform(&request.passengers);
    // Inference runs inline on the tokio worker: a row takes microseconds, less than a hop to
    // the blocking pool and back would cost. The one slow case is tract's tree ensemble (about
    // 0.4 ms a row), which then holds this worker for the whole batch.
    let probabilities = app
        .engine
        .predict(model, &features, rows)
        .and_then(|p| engine::check_output(&p, rows).map(|()| p));
    let probabilities = match probabilities {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "{}: inference failed on {}: {e}",
                app.framework,
                model.name()
            );
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                b"inference failed",
                start,
            );
        }
    };

    let mut out = Vec::with_capacity(16 + rows * 48);
    if request.batch {
        out.extend_from_slice(b"{\"predictions\":[");
        for (i, &p) in probabilities.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_prediction(&mut out, p);
        }
        out.extend_from_slice(b"]}");
    } else {
        write_prediction(&mut out, probabilities[0]);
    }
    respond(StatusCode::OK, Bytes::from(out), start)
}

/// `{"survived":0|1,"probability":p}`, p widened to f64 exactly as Python's `float(p)` does.
fn write_prediction(out: &mut Vec<u8>, p: f32) {
    out.extend_from_slice(if p >= 0.5 {
        b"{\"survived\":1,\"probability\":"
    } else {
        b"{\"survived\":0,\"probability\":"
    });
    // serde_json prints the shortest repr that round-trips and keeps "1.0" a float.
    if serde_json::to_writer(&mut *out, &f64::from(p)).is_err() {
        out.extend_from_slice(b"null");
    }
    out.push(b'}');
}

fn respond(status: StatusCode, body: Bytes, start: Instant) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let timing = format!("app;dur={:.3}", start.elapsed().as_secs_f64() * 1e3);
    if let Ok(value) = HeaderValue::from_str(&timing) {
        headers.insert("server-timing", value);
    }
    response
}

fn error(status: StatusCode, message: &[u8], start: Instant) -> Response {
    respond(status, Bytes::from(error_json(message, None)), start)
}

fn contract_error(err: &contract::ContractError, start: Instant) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    respond(status, Bytes::from(err.to_json()), start)
}

fn method_not_allowed(allow: &'static str, start: Instant) -> Response {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, b"Method Not Allowed", start);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
