//! The engine call of the record API on tract, one row and a batch of 32, for every record model:
//! `cargo bench -p servebench-tract`, with the models the tests use (`SERVEBENCH_MODELS_DIR`,
//! `SERVEBENCH_MODELS`). The HTTP layer around it is `cargo bench -p servebench-core`.

#[macro_use]
#[path = "../../servebench-core/benches/shared/record_engine.rs"]
mod record_engine;

engine_bench!(servebench_tract::TractEngine, "tract");
