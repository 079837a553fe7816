//! The engine call of the record API on tract, one row and a batch of 32, for every record
//! model: `cargo bench -p servebench-tract`, with the models and the library the tests use
//! (`SERVEBENCH_MODELS_DIR`, `SERVEBENCH_MODELS`). The HTTP layer around it
//! is `cargo bench -p servebench-core`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use servebench_core::conformance;
use servebench_tract::TractEngine;

#[path = "../../servebench-core/benches/shared/record_engine.rs"]
mod record_engine;

fn engine(c: &mut Criterion) {
    let (_, request) = conformance::load_request_from_env(1);
    let engine = TractEngine::load(&request).unwrap_or_else(|e| panic!("{e}"));
    record_engine::bench(c, "tract", &engine, &request);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = engine
}
criterion_main!(benches);
