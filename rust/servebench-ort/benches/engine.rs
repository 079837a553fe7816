//! The engine call of the record API on ONNX Runtime, one row and a batch of 32, for every record
//! model: `cargo bench -p servebench-ort`, with the models and the library the tests use
//! (`SERVEBENCH_MODELS_DIR`, `SERVEBENCH_MODELS`, `ORT_DYLIB_PATH`). The HTTP layer around it
//! is `cargo bench -p servebench-core`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use servebench_core::{Engine, N_FEATURES, RecordModel, conformance};
use servebench_ort::OrtEngine;

fn engine(c: &mut Criterion) {
    let (_, request) = conformance::load_request_from_env(1);
    let engine = OrtEngine::load(&request).unwrap_or_else(|e| panic!("{e}"));
    let row = [3.0, 1.0, -0.5, 1.0, 0.0, -0.5];
    let batch: Vec<f32> = row.iter().copied().cycle().take(32 * N_FEATURES).collect();
    let mut group = c.benchmark_group("ort");
    for (index, (spec, info)) in request.models.iter().zip(engine.models()).enumerate() {
        let Ok(model) = RecordModel::new(info, index) else {
            continue;
        };
        group.bench_function(format!("{}/one", spec.name), |b| {
            b.iter(|| {
                model
                    .predict(&engine, black_box(&row), 1)
                    .expect("an answer")
            })
        });
        group.bench_function(format!("{}/batch32", spec.name), |b| {
            b.iter(|| {
                model
                    .predict(&engine, black_box(&batch), 32)
                    .expect("an answer")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = engine
}
criterion_main!(benches);
