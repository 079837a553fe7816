//! What an engine crate supplies: inference over the models it was asked to load.

use std::fmt;
use std::path::PathBuf;

use crate::preprocess::N_FEATURES;

/// Name of the graph input: float32 `[batch, 6]`.
pub const INPUT_NAME: &str = "features";
/// Name of the graph output: float32 `[batch]`, the survival probability.
pub const OUTPUT_NAME: &str = "probability";

/// One model to load: the name clients use in `/predict/{name}` and its ONNX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
}

/// What an engine is built from.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The models, sorted by name. A model is referred to by its index in this list.
    pub models: Vec<ModelSpec>,
    /// Number of threads that will call the engine at once (the tokio workers).
    pub workers: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

impl EngineError {
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// An inference backend. `predict` is called from many tokio worker threads at once.
pub trait Engine: Send + Sync + 'static {
    /// `model` indexes [`LoadRequest::models`]; `features` is row-major `[rows, 6]`. The result
    /// holds one probability per row, in order.
    fn predict(&self, model: usize, features: &[f32], rows: usize)
    -> Result<Vec<f32>, EngineError>;

    /// Called once per model before the server answers anything. Engines holding several
    /// copies of a model should run every copy, so no request pays for a first run.
    fn warm_up(
        &self,
        model: usize,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        self.predict(model, features, rows)
    }
}

/// Check an engine's output before it reaches a client.
pub fn check_output(probabilities: &[f32], rows: usize) -> Result<(), EngineError> {
    if probabilities.len() != rows {
        return Err(EngineError(format!(
            "model returned {} values for {rows} rows",
            probabilities.len()
        )));
    }
    if let Some(p) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(EngineError(format!(
            "model returned {p}, which is not a probability"
        )));
    }
    Ok(())
}

/// For engines: the feature slice must be exactly `[rows, 6]`.
pub fn check_input(features: &[f32], rows: usize) -> Result<(), EngineError> {
    if rows == 0 || features.len() != rows * N_FEATURES {
        return Err(EngineError(format!(
            "{} features for {rows} rows of {N_FEATURES}",
            features.len()
        )));
    }
    Ok(())
}
