//! The engine call of the record API on ONNX Runtime, one row and a batch of 32, for every record
//! model: `cargo bench -p servebench-ort`, with the models and the library the tests use
//! (`SERVEBENCH_MODELS_DIR`, `SERVEBENCH_MODELS`, `ORT_DYLIB_PATH`). The HTTP layer around it
//! is `cargo bench -p servebench-core`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use servebench_core::conformance;
use servebench_ort::OrtEngine;

#[path = "../../servebench-core/benches/shared/record_engine.rs"]
mod record_engine;

fn engine(c: &mut Criterion) {
    let (_, request) = conformance::load_request_from_env(1);
    let engine = OrtEngine::load(&request).unwrap_or_else(|e| panic!("{e}"));
    record_engine::bench(c, "ort", &engine, &request);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = engine
}
criterion_main!(benches);
