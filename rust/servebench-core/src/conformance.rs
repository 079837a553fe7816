//! Checks a real engine on the real model files against the Python side's own ONNX Runtime
//! outputs (reference.jsonl, written next to the models by the export notebook). The engine
//! crates' tests call it; they skip when the models have not been trained yet.

use std::path::{Path, PathBuf};

use crate::config::MODELS_DIR_ENV;
use crate::contract::parse_request;
use crate::engine::{Engine, LoadRequest, Model};
use crate::preprocess::{N_FEATURES, Preprocessor};

/// `$SERVEBENCH_MODELS_DIR`, else the project's outputs/models, if it holds all three files.
pub fn models_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(MODELS_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../outputs/models"));
    let complete = std::iter::once("preprocess.json")
        .chain(Model::ALL.map(Model::file))
        .all(|file| dir.join(file).is_file());
    complete.then_some(dir)
}

pub fn load_request(dir: &Path, workers: usize) -> LoadRequest {
    LoadRequest {
        models: Model::ALL.map(|m| (m, dir.join(m.file()))).to_vec(),
        workers,
    }
}

/// A passenger as a request body, and Python's probability per model in [`Model::ALL`] order.
type ReferenceRow = (Vec<u8>, Option<[f64; 2]>);

/// Rows to check: reference.jsonl's passengers and probabilities when it exists, else a few
/// fixed passengers with no expected probabilities.
fn reference_rows(dir: &Path) -> Result<Vec<ReferenceRow>, String> {
    let path = dir.join("reference.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        let fixed = [
            r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#,
            r#"{"Pclass": 1, "Sex": "female", "Age": null, "SibSp": 1, "Parch": 0, "Fare": 71.2833}"#,
            r#"{"Pclass": 2, "Sex": "female", "Age": 0.42, "SibSp": 0, "Parch": 1, "Fare": 0}"#,
            r#"{"Pclass": 1, "Sex": "male", "Age": 80, "SibSp": 8, "Parch": 6, "Fare": 512.3292}"#,
        ];
        return Ok(fixed
            .iter()
            .map(|b| (b.as_bytes().to_vec(), None))
            .collect());
    };
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
        let doc: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let passenger: serde_json::Map<String, serde_json::Value> = crate::contract::FIELDS
            .iter()
            .map(|&f| {
                (
                    f.to_string(),
                    doc.get(f).cloned().unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        let expected = Model::ALL.map(|m| doc.get(m.name()).and_then(serde_json::Value::as_f64));
        let expected = match expected {
            [Some(a), Some(b)] => [a, b],
            _ => return Err(bad("no probability for an ONNX model")),
        };
        rows.push((
            serde_json::to_vec(&passenger).unwrap_or_default(),
            Some(expected),
        ));
    }
    Ok(rows)
}

/// Run every row one at a time and all rows as one batch through both models. Each answer must
/// be a probability, batch and single answers must agree, and where reference.jsonl gives the
/// Python probability, be within `tolerance` of it. Returns the number of rows checked and the
/// largest difference from Python seen.
pub fn check_engine(
    engine: &dyn Engine,
    dir: &Path,
    tolerance: f64,
) -> Result<(usize, f64), String> {
    let preprocessor = Preprocessor::load(&dir.join("preprocess.json"))?;
    let rows = reference_rows(dir)?;
    let mut features = Vec::with_capacity(rows.len() * N_FEATURES);
    for (body, _) in &rows {
        let request = parse_request(body, Some(b"application/json")).map_err(|e| {
            format!(
                "reference row {} is invalid: {}",
                String::from_utf8_lossy(body),
                e.message_lossy()
            )
        })?;
        features.extend(preprocessor.transform(&request.passengers));
    }
    let mut largest = 0.0f64;
    for model in Model::ALL {
        let name = model.name();
        let mut batch = Vec::with_capacity(rows.len());
        for chunk in features.chunks(crate::contract::MAX_BATCH * N_FEATURES) {
            let rows_here = chunk.len() / N_FEATURES;
            let out = engine
                .predict(model, chunk, rows_here)
                .map_err(|e| format!("{name}: {e}"))?;
            crate::engine::check_output(&out, rows_here).map_err(|e| format!("{name}: {e}"))?;
            batch.extend(out);
        }
        for (i, (body, expected)) in rows.iter().enumerate() {
            let row = &features[i * N_FEATURES..(i + 1) * N_FEATURES];
            let single = engine
                .predict(model, row, 1)
                .map_err(|e| format!("{name}: {e}"))?;
            crate::engine::check_output(&single, 1).map_err(|e| format!("{name}: {e}"))?;
            let passenger = String::from_utf8_lossy(body);
            if (single[0] - batch[i]).abs() > 1e-6 {
                return Err(format!(
                    "{name}: {passenger}: single {} but {} in a batch",
                    single[0], batch[i]
                ));
            }
            if let Some(expected) = expected {
                let want = expected[model.index()];
                let got = f64::from(single[0]);
                largest = largest.max((got - want).abs());
                if (got - want).abs() > tolerance {
                    return Err(format!(
                        "{name}: {passenger}: {got} here, {want} in Python (tolerance {tolerance})"
                    ));
                }
            }
        }
    }
    Ok((rows.len(), largest))
}
