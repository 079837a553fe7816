//! The request path of the record API, layer by layer, over an engine that answers at once, so
//! that a change to the HTTP layer can be checked in seconds: `cargo bench -p servebench-core`
//! (a filter narrows it: `cargo bench -p servebench-core -- parse`). The report's Rust rows, not
//! these, are the figures of record. The engine's own time is `cargo bench -p servebench-ort`.
//!
//! - `parse/*`: a body to a checked [`Payload`], the one-pass reader and the `Value` path that
//!   every other body (and every error) takes;
//! - `preprocess/*`: features of one passenger and of a batch of 32;
//! - `router/*`: a whole request through the router, in-process: routing, extractors, the
//!   handler, serialisation, Server-Timing and the deadline;
//! - `transport/*`: the same over a loopback socket through the server's accept loop and hyper,
//!   one keep-alive connection, client and server on one thread.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::http::Request;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use serde_json::Value;
use servebench_core::http::{App, router};
use servebench_core::serve::{Limits, serve};
use servebench_core::{
    Data, DataType, Engine, EngineError, INPUT_NAME, ModelInfo, N_FEATURES, OUTPUT_NAME, Payload,
    Preprocessor, Tensor, TensorInfo, TensorView,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const PASSENGER: &str =
    r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;

fn batch(rows: usize) -> String {
    format!(r#"{{"instances": [{}]}}"#, vec![PASSENGER; rows].join(", "))
}

static TITANIC: LazyLock<Vec<ModelInfo>> = LazyLock::new(|| {
    let info = ModelInfo {
        inputs: vec![TensorInfo::new(
            INPUT_NAME,
            DataType::Fp32,
            vec![-1, N_FEATURES as i64],
        )],
        outputs: vec![TensorInfo::new(OUTPUT_NAME, DataType::Fp32, vec![-1])],
    };
    vec![info.clone(), info]
});

/// Two Titanic models that answer 0.25 for every row, as cheaply as an engine can.
struct Constant;

impl Engine for Constant {
    fn models(&self) -> &[ModelInfo] {
        &TITANIC
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
            data: Data::F32(vec![0.25; rows]),
        }])
    }
}

fn preprocessor() -> Preprocessor {
    Preprocessor::from_json(&serde_json::json!({
        "format_version": 1,
        "features": ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"],
        "sex_mapping": {"female": 0, "male": 1},
        "fill_values": {"Age": 28.5},
        "mean": [0.0, 0.0, 29.6, 0.0, 0.0, 31.8],
        "scale": [1.0, 1.0, 13.0, 1.0, 1.0, 48.0],
    }))
    .expect("a valid preprocess.json")
}

fn app() -> Arc<App> {
    let models = vec!["lightgbm_onnx".to_string(), "pytorch_onnx".to_string()];
    let app = App::new(
        "bench",
        models,
        Vec::new(),
        Arc::new(Constant),
        preprocessor(),
    );
    Arc::new(app.expect("the bench app"))
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, body) in [("one", PASSENGER.to_string()), ("batch32", batch(32))] {
        group.bench_function(format!("{name}/one_pass"), |b| {
            b.iter(|| {
                Payload::from_slice(black_box(body.as_bytes()))
                    .expect("a good body")
                    .checked()
            })
        });
        group.bench_function(format!("{name}/value_path"), |b| {
            b.iter(|| {
                let Json(value) =
                    Json::<Value>::from_bytes(black_box(body.as_bytes())).expect("a good body");
                Payload::from_value(value)
            })
        });
    }
    group.finish();
}

fn preprocess(c: &mut Criterion) {
    let preprocessor = preprocessor();
    let payload = Payload::from_slice(batch(32).as_bytes()).expect("a good body");
    let passengers = payload.passengers();
    let mut group = c.benchmark_group("preprocess");
    group.bench_function("one", |b| {
        b.iter(|| preprocessor.features(black_box(&passengers[0])))
    });
    group.bench_function("batch32", |b| {
        b.iter(|| preprocessor.transform(black_box(passengers)))
    });
    group.finish();
}

fn request(method: &str, uri: &str, body: &str) -> Request<Body> {
    let builder = Request::builder().method(method).uri(uri);
    let builder = if body.is_empty() {
        builder
    } else {
        builder.header("content-type", "application/json")
    };
    builder
        .body(Body::from(body.to_string()))
        .expect("a request")
}

fn in_process(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let router = router(app());
    let mut group = c.benchmark_group("router");
    let cases = [
        ("health", "GET", "/health", String::new()),
        (
            "predict_one",
            "POST",
            "/predict/pytorch_onnx",
            PASSENGER.into(),
        ),
        (
            "predict_batch32",
            "POST",
            "/predict/pytorch_onnx",
            batch(32),
        ),
        (
            "predict_422",
            "POST",
            "/predict/pytorch_onnx",
            r#"{"Pclass": 4}"#.into(),
        ),
        ("not_found", "GET", "/nowhere", String::new()),
    ];
    for (name, method, uri, body) in cases {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                || request(method, uri, &body),
                |request| {
                    let router = router.clone();
                    async move {
                        let response = router.oneshot(request).await.expect("infallible");
                        response.into_body().collect().await.expect("a body")
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// A server on a loopback port of `runtime`, and one keep-alive connection to it.
fn connect(runtime: &Runtime) -> tokio::net::TcpStream {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address: SocketAddr = listener.local_addr().expect("an address");
        tokio::spawn(async move {
            serve(
                listener,
                router(app()),
                &Limits::default(),
                std::future::pending(),
            )
            .await
        });
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("a connection");
        stream.set_nodelay(true).expect("nodelay");
        stream
    })
}

/// Send one request and read its answer: the head, then `Content-Length` bytes.
async fn round_trip(stream: &mut tokio::net::TcpStream, request: &[u8], buffer: &mut Vec<u8>) {
    stream.write_all(request).await.expect("sent");
    buffer.clear();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..end]).expect("an ASCII head");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("a Content-Length");
        if buffer.len() >= end + 4 + length {
            return;
        }
    }
}

fn transport(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut stream = connect(&runtime);
    let mut buffer = Vec::with_capacity(4096);
    let health = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec();
    let predict = format!(
        "POST /predict/pytorch_onnx HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{PASSENGER}",
        PASSENGER.len()
    )
    .into_bytes();
    let mut group = c.benchmark_group("transport");
    group.measurement_time(Duration::from_secs(3));
    for (name, request) in [("health", &health), ("predict_one", &predict)] {
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(round_trip(&mut stream, request, &mut buffer)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = parse, preprocess, in_process, transport
}
criterion_main!(benches);
