//! The engine call of the record API, one row and a batch of 32, for every record model of the
//! request: shared by the engines' benches (`#[path]`-included, so no crate depends on criterion
//! outside its benches). An engine's bench is `engine_bench!(Engine type, "group")`: the models
//! and libraries are the tests' (`conformance::load_request_from_env`).

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

/// The bench's `main`: loads `$engine` from the tests' environment and times it as `$group`.
macro_rules! engine_bench {
    ($engine:ty, $group:literal) => {
        fn engine(c: &mut criterion::Criterion) {
            let (_, request) = servebench_core::conformance::load_request_from_env(1);
            let engine = <$engine>::load(&request).unwrap_or_else(|e| panic!("{e}"));
            record_engine::bench(c, $group, &engine, &request);
        }

        criterion::criterion_group! {
            name = benches;
            config = criterion::Criterion::default()
                .warm_up_time(std::time::Duration::from_millis(500))
                .measurement_time(std::time::Duration::from_secs(2));
            targets = engine
        }
        criterion::criterion_main!(benches);
    };
}
