//! The engine call of the record API on ONNX Runtime, one row and a batch of 32, for every record
//! model: `cargo bench -p servebench-ort`, with the models and the library the tests use
//! (`SERVEBENCH_MODELS_DIR`, `SERVEBENCH_MODELS`, `ORT_DYLIB_PATH`). The HTTP layer around it
//! is `cargo bench -p servebench-core`.

#[macro_use]
#[path = "../../servebench-core/benches/shared/record_engine.rs"]
mod record_engine;

engine_bench!(servebench_ort::OrtEngine, "ort");
