//! A servebench inference engine on tract, a pure Rust ONNX runtime (nothing to load at run time
//! but the models), usable by any Rust web layer.

use std::path::Path;
use std::sync::Arc;

use servebench_core::engine::check_input;
use servebench_core::{Engine, EngineError, INPUT_NAME, LoadRequest, N_FEATURES, OUTPUT_NAME};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{dims, ensure};

/// An optimised plan is immutable and `run` takes `&self` (each call gets a fresh state), so one
/// plan per model is shared by all workers through an `Arc`, with no lock.
pub struct TractEngine {
    /// One plan per model, in [`LoadRequest::models`] order.
    plans: Vec<Arc<TypedRunnableModel>>,
}

impl TractEngine {
    /// Load and optimise every model. Errors name the file.
    pub fn load(request: &LoadRequest) -> Result<Self, String> {
        let plans = request
            .models
            .iter()
            .map(|model| {
                load_plan(&model.path)
                    .map_err(|e| format!("cannot load model {}: {e:#}", model.path.display()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { plans })
    }
}

fn load_plan(path: &Path) -> TractResult<Arc<TypedRunnableModel>> {
    // `onnx()` registers the ai.onnx.ml operators (TreeEnsembleClassifier among them) as well.
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    ensure!(
        model.input_outlets()?.len() == 1 && model.output_outlets()?.len() == 1,
        "expected one input and one output"
    );
    let input_name = &model.node(model.input_outlets()?[0].node).name;
    ensure!(
        input_name == INPUT_NAME,
        "input is {input_name:?}, expected {INPUT_NAME:?}"
    );
    let output_name = &model.node(model.output_outlets()?[0].node).name;
    ensure!(
        output_name == OUTPUT_NAME
            || model.outlet_label(model.output_outlets()?[0]) == Some(OUTPUT_NAME),
        "output is {output_name:?}, expected {OUTPUT_NAME:?}"
    );
    // A symbolic batch dimension keeps one plan valid for every batch size.
    let batch = model.sym("batch");
    model.set_input_fact(0, f32::fact(dims!(batch, N_FEATURES)).into())?;
    let model = model.into_optimized()?;
    let output = model.output_fact(0)?;
    ensure!(
        output.datum_type == f32::datum_type() && output.rank() == 1,
        "output fact is {output:?}, expected float32 [batch]"
    );
    model.into_runnable()
}

impl Engine for TractEngine {
    fn predict(
        &self,
        model: usize,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        check_input(features, rows)?;
        let plan = self
            .plans
            .get(model)
            .ok_or_else(|| EngineError(format!("no model {model} is loaded")))?;
        let input = Tensor::from_shape(&[rows, N_FEATURES], features).map_err(EngineError::new)?;
        let outputs = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(EngineError::new)?;
        let output = outputs
            .first()
            .ok_or_else(|| EngineError::new("model produced no output"))?;
        if output.shape() != [rows] {
            return Err(EngineError(format!(
                "output shape {:?} for {rows} rows",
                output.shape()
            )));
        }
        let view = output.try_as_plain_ram().map_err(EngineError::new)?;
        Ok(view.as_slice::<f32>().map_err(EngineError::new)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use servebench_core::{ModelSpec, conformance};

    #[test]
    fn real_models_match_python() {
        let (dir, request) = conformance::load_request_from_env(2);
        let engine = TractEngine::load(&request).unwrap_or_else(|e| panic!("{e}"));
        let (rows, largest) = conformance::check_engine(&engine, &dir, &request.models, 1e-5)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "tract: {rows} rows from {} agree with Python (largest difference {largest:e})",
            dir.display()
        );
    }

    #[test]
    fn a_model_that_is_not_onnx_fails_with_its_path() {
        let dir =
            std::env::temp_dir().join(format!("servebench-tract-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.onnx");
        std::fs::write(&path, b"not a model").unwrap();
        let request = LoadRequest {
            models: vec![ModelSpec {
                name: "broken".into(),
                path: path.clone(),
            }],
            workers: 1,
        };
        let message = TractEngine::load(&request).err().unwrap();
        assert!(message.contains(&path.display().to_string()), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
