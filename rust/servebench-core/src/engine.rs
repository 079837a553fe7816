//! What a server binary supplies: an inference engine that owns the loaded models.

use std::fmt;
use std::path::PathBuf;

use crate::preprocess::N_FEATURES;

/// The models the Rust servers serve, in the sorted order /health lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    LightgbmOnnx,
    PytorchOnnx,
}

impl Model {
    pub const ALL: [Model; 2] = [Model::LightgbmOnnx, Model::PytorchOnnx];

    pub fn name(self) -> &'static str {
        match self {
            Model::LightgbmOnnx => "lightgbm_onnx",
            Model::PytorchOnnx => "pytorch_onnx",
        }
    }

    /// File name inside the models directory.
    pub fn file(self) -> &'static str {
        match self {
            Model::LightgbmOnnx => "lightgbm.onnx",
            Model::PytorchOnnx => "pytorch.onnx",
        }
    }

    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Position in [`Model::ALL`], for engines that keep one slot per model.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Name of the graph input: float32 `[batch, 6]`.
pub const INPUT_NAME: &str = "features";
/// Name of the graph output: float32 `[batch]`, the survival probability.
pub const OUTPUT_NAME: &str = "probability";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError(pub String);

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

impl EngineError {
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// An inference backend. `predict` is called from many tokio worker threads at once.
pub trait Engine: Send + Sync + 'static {
    /// `features` is row-major `[rows, 6]`; the result holds one probability per row, in order.
    fn predict(&self, model: Model, features: &[f32], rows: usize)
    -> Result<Vec<f32>, EngineError>;

    /// Called once per model before the server answers anything. Engines holding several
    /// copies of a model should run every copy, so no request pays for a first run.
    fn warm_up(
        &self,
        model: Model,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        self.predict(model, features, rows)
    }
}

/// What an engine is built from.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// Every model in [`Model::ALL`] order with the path of its ONNX file.
    pub models: Vec<(Model, PathBuf)>,
    /// Number of tokio worker threads that will call the engine.
    pub workers: usize,
}

/// Check an engine's output before it reaches a client.
pub(crate) fn check_output(probabilities: &[f32], rows: usize) -> Result<(), EngineError> {
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
