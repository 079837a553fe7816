//! The engine call of the record API, one row and a batch of 32, for every record model of the
//! request: shared by the engines' benches (`#[path]`-included, so no crate depends on criterion
//! outside its benches).

use std::hint::black_box;

use criterion::Criterion;
use servebench_core::{Engine, LoadRequest, N_FEATURES, RecordModel};

pub fn bench(c: &mut Criterion, group: &str, engine: &dyn Engine, request: &LoadRequest) {
    let row = [3.0, 1.0, -0.5, 1.0, 0.0, -0.5];
    let batch: Vec<f32> = row.iter().copied().cycle().take(32 * N_FEATURES).collect();
    let mut group = c.benchmark_group(group);
    for (index, (spec, info)) in request.models.iter().zip(engine.models()).enumerate() {
        let Ok(model) = RecordModel::new(info, index) else {
            continue;
        };
        group.bench_function(format!("{}/one", spec.name), |b| {
            b.iter(|| {
                model
                    .predict(engine, black_box(&row), 1)
                    .expect("an answer")
            })
        });
        group.bench_function(format!("{}/batch32", spec.name), |b| {
            b.iter(|| {
                model
                    .predict(engine, black_box(&batch), 32)
                    .expect("an answer")
            })
        });
    }
    group.finish();
}
