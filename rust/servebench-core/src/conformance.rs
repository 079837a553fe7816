//! For the engine crates' tests: check a real engine on the real model files against the
//! probabilities Python's ONNX Runtime wrote to reference.jsonl.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{MODELS_DIR_ENV, MODELS_ENV};
use crate::contract::{FIELDS, MAX_BATCH, Passenger};
use crate::engine::{Engine, LoadRequest, ModelSpec, check_output};
use crate::preprocess::{N_FEATURES, Preprocessor};

/// The models folder and model list from `$SERVEBENCH_MODELS_DIR` and `$SERVEBENCH_MODELS`.
/// Panics, saying what to set, when either is missing: an engine test must not pass by skipping.
pub fn load_request_from_env(workers: usize) -> (PathBuf, LoadRequest) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let help = "The engine tests compare with Python's ONNX Runtime: set SERVEBENCH_MODELS_DIR \
                to a folder with preprocess.json, the .onnx models and reference.jsonl (outputs/models \
                after a run, or OUT/models after `.venv/bin/python -m servebench.quick_models OUT`) \
                and SERVEBENCH_MODELS to name=file pairs, e.g. \
                pytorch_onnx=pytorch.onnx,lightgbm_onnx=lightgbm.onnx";
    let (Some(dir), Some(list)) = (var(MODELS_DIR_ENV), var(MODELS_ENV)) else {
        panic!("{MODELS_DIR_ENV} and {MODELS_ENV} must be set. {help}");
    };
    let dir = PathBuf::from(dir);
    let mut models: Vec<ModelSpec> = list
        .split(',')
        .map(|pair| {
            let (name, file) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("{MODELS_ENV}={list:?} is not name=file,... {help}"));
            ModelSpec {
                name: name.trim().to_string(),
                path: dir.join(file.trim()),
            }
        })
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    for file in ["preprocess.json", "reference.jsonl"] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing. {help}",
            dir.join(file).display()
        );
    }
    for model in &models {
        assert!(
            model.path.is_file(),
            "{} is missing. {help}",
            model.path.display()
        );
    }
    (dir, LoadRequest { models, workers })
}

/// A passenger, and Python's probability for each model of the request, in its order.
fn reference_rows(dir: &Path, models: &[ModelSpec]) -> Result<Vec<(Passenger, Vec<f64>)>, String> {
    let path = dir.join("reference.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |what: &dyn std::fmt::Display| format!("{}:{}: {what}", path.display(), n + 1);
        let doc: Map<String, Value> = serde_json::from_str(line).map_err(|e| bad(&e))?;
        // The line also holds ids, the label and the probabilities: keep the request fields.
        let fields: Map<String, Value> = FIELDS
            .iter()
            .filter_map(|&f| Some((f.to_string(), doc.get(f)?.clone())))
            .collect();
        let passenger: Passenger =
            serde_json::from_value(Value::Object(fields)).map_err(|e| bad(&e))?;
        passenger
            .validate()
            .map_err(|field| bad(&format!("{field} is out of range")))?;
        let expected = models
            .iter()
            .map(|m| doc.get(&m.name).and_then(Value::as_f64))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(&"no probability for one of the models"))?;
        rows.push((passenger, expected));
    }
    if rows.is_empty() {
        return Err(format!("{} has no rows", path.display()));
    }
    Ok(rows)
}

/// Run every reference row one at a time and all of them in batches through every model. Each
/// answer must be a probability, batch and single answers must agree, and each must be within
/// `tolerance` of Python's. Returns the number of rows and the largest difference from Python.
pub fn check_engine(
    engine: &dyn Engine,
    dir: &Path,
    models: &[ModelSpec],
    tolerance: f64,
) -> Result<(usize, f64), String> {
    let preprocessor = Preprocessor::load(&dir.join("preprocess.json"))?;
    let rows = reference_rows(dir, models)?;
    let passengers: Vec<Passenger> = rows.iter().map(|(p, _)| *p).collect();
    let features = preprocessor.transform(&passengers);
    let mut largest = 0.0f64;
    for (index, model) in models.iter().enumerate() {
        let name = &model.name;
        let run = |chunk: &[f32]| {
            let rows = chunk.len() / N_FEATURES;
            let out = engine.predict(index, chunk, rows);
            out.and_then(|p| check_output(&p, rows).map(|()| p))
                .map_err(|e| format!("{name}: {e}"))
        };
        let mut batch = Vec::with_capacity(rows.len());
        for chunk in features.chunks(MAX_BATCH * N_FEATURES) {
            batch.extend(run(chunk)?);
        }
        for (i, (passenger, expected)) in rows.iter().enumerate() {
            let single = run(&features[i * N_FEATURES..(i + 1) * N_FEATURES])?[0];
            if (single - batch[i]).abs() > 1e-6 {
                return Err(format!(
                    "{name}: {passenger:?}: single {single} but {} in a batch",
                    batch[i]
                ));
            }
            let (got, want) = (f64::from(single), expected[index]);
            largest = largest.max((got - want).abs());
            if (got - want).abs() > tolerance {
                return Err(format!(
                    "{name}: {passenger:?}: {got} here, {want} in Python (tolerance {tolerance})"
                ));
            }
        }
    }
    Ok((rows.len(), largest))
}
