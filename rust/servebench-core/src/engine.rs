//! What an engine crate supplies: inference over numeric tensors for every model it was asked to
//! load, with each model's inputs and outputs as its graph declares them.
//!
//! Both APIs run on it. The Open Inference Protocol ([`crate::v2`]) hands any model its inputs as
//! typed tensors; the record API (`/predict/{model}`) is one such call, made by [`RecordModel`]:
//! input `features` float32 `[rows, 6]`, output `probability` float32 `[rows]`.

use std::fmt;
use std::path::PathBuf;

use crate::preprocess::N_FEATURES;

/// Name of the record API's graph input: float32 `[batch, 6]`.
pub const INPUT_NAME: &str = "features";
/// Name of the record API's graph output: float32 `[batch]`, the survival probability.
pub const OUTPUT_NAME: &str = "probability";

/// One model to load: the name clients use (`/predict/{name}`, `/v2/models/{name}`) and its ONNX
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
}

/// What an engine is built from.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// Every model: the record API's, then the packs. A model is referred to by its index in
    /// this list.
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

/// The element types served: ONNX float, double, int64 and int32, by their V2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Fp32,
    Fp64,
    Int64,
    Int32,
}

impl DataType {
    pub const ALL: [DataType; 4] = [Self::Fp32, Self::Fp64, Self::Int64, Self::Int32];

    /// The protocol's name: `FP32`, `FP64`, `INT64`, `INT32`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Int64 => "INT64",
            Self::Int32 => "INT32",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The ONNX name, for messages: `tensor(float)` and so on.
    pub fn onnx_name(self) -> &'static str {
        match self {
            Self::Fp32 => "tensor(float)",
            Self::Fp64 => "tensor(double)",
            Self::Int64 => "tensor(int64)",
            Self::Int32 => "tensor(int32)",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an engine says when a model's input or output has another type: the message that stops
/// start-up, naming the model and the tensor. `kind` is what the graph declares, e.g.
/// `tensor(string)` or `seq(map(int64,tensor(float)))`.
pub fn unsupported_type(model: &str, role: &str, name: &str, kind: &str) -> String {
    let mut message = format!(
        "model {model}: {role} '{name}' is a {kind}; only float, double, int64 and int32 \
         tensors (FP32, FP64, INT64, INT32) can be served"
    );
    if !kind.starts_with("tensor") {
        message.push_str(
            " (a sequence or map, such as a ZipMap's output: export the classifier with \
             zipmap=False)",
        );
    }
    message
}

/// A graph input or output: its name, datatype and shape, -1 for a dynamic dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

impl TensorInfo {
    pub fn new(name: impl Into<String>, datatype: DataType, shape: Vec<i64>) -> Self {
        Self {
            name: name.into(),
            datatype,
            shape,
        }
    }

    /// Whether a tensor of `shape` fits: the same rank, and every fixed dimension equal.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        shape.len() == self.shape.len()
            && shape
                .iter()
                .zip(&self.shape)
                .all(|(&d, &want)| want < 0 || i64::try_from(d).is_ok_and(|d| d == want))
    }
}

/// A model's graph inputs and outputs, in graph order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// A tensor's values, flat and row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

/// Borrowed values of a tensor, flat and row-major.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataView<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I64(&'a [i64]),
    I32(&'a [i32]),
}

impl Data {
    pub fn datatype(&self) -> DataType {
        self.view().datatype()
    }

    pub fn len(&self) -> usize {
        self.view().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn view(&self) -> DataView<'_> {
        match self {
            Self::F32(v) => DataView::F32(v),
            Self::F64(v) => DataView::F64(v),
            Self::I64(v) => DataView::I64(v),
            Self::I32(v) => DataView::I32(v),
        }
    }

    /// `len` zeros of `datatype`.
    pub fn zeros(datatype: DataType, len: usize) -> Self {
        match datatype {
            DataType::Fp32 => Self::F32(vec![0.0; len]),
            DataType::Fp64 => Self::F64(vec![0.0; len]),
            DataType::Int64 => Self::I64(vec![0; len]),
            DataType::Int32 => Self::I32(vec![0; len]),
        }
    }
}

impl DataView<'_> {
    pub fn datatype(&self) -> DataType {
        match self {
            Self::F32(_) => DataType::Fp32,
            Self::F64(_) => DataType::Fp64,
            Self::I64(_) => DataType::Int64,
            Self::I32(_) => DataType::Int32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every value is finite (integers always are).
    pub fn is_finite(&self) -> bool {
        match self {
            Self::F32(v) => v.iter().all(|x| x.is_finite()),
            Self::F64(v) => v.iter().all(|x| x.is_finite()),
            Self::I64(_) | Self::I32(_) => true,
        }
    }
}

/// An engine's answer: an output's shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            shape: &self.shape,
            data: self.data.view(),
        }
    }
}

/// An input handed to an engine, borrowed: an engine that can read the caller's buffer does not
/// copy it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    pub shape: &'a [usize],
    pub data: DataView<'a>,
}

/// The number of elements of `shape`, or `None` when the product overflows.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// An inference backend. Every method is called from many tokio worker threads at once.
pub trait Engine: Send + Sync + 'static {
    /// The inputs and outputs of every model, in [`LoadRequest::models`] order.
    fn models(&self) -> &[ModelInfo];

    /// Run `model` on `inputs`, one per graph input in graph order, each of that input's datatype
    /// and of a shape it accepts, holding as many values as its shape (see [`check_inputs`]).
    /// `outputs` picks the outputs to return, as indices into [`ModelInfo::outputs`], in the
    /// order wanted.
    fn infer(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError>;

    /// Called for every model before the server answers anything. Engines holding several copies
    /// of a model should run every copy, so no request pays for a first run.
    fn warm_up(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        self.infer(model, inputs, outputs)
    }
}

/// For engines, before running: `inputs` are one per graph input, of its datatype and of a shape
/// it accepts, with as many values as the shape holds; `outputs` are valid, distinct indices.
pub fn check_inputs(
    info: &ModelInfo,
    inputs: &[TensorView<'_>],
    outputs: &[usize],
) -> Result<(), EngineError> {
    if inputs.len() != info.inputs.len() {
        return Err(EngineError(format!(
            "{} inputs for a model of {}",
            inputs.len(),
            info.inputs.len()
        )));
    }
    for (given, want) in inputs.iter().zip(&info.inputs) {
        let name = &want.name;
        if given.data.datatype() != want.datatype {
            return Err(EngineError(format!(
                "input '{name}': {} data for {}",
                given.data.datatype(),
                want.datatype
            )));
        }
        if !want.accepts(given.shape) {
            return Err(EngineError(format!(
                "input '{name}': shape {:?} for {:?}",
                given.shape, want.shape
            )));
        }
        if element_count(given.shape) != Some(given.data.len()) {
            return Err(EngineError(format!(
                "input '{name}': {} values for shape {:?}",
                given.data.len(),
                given.shape
            )));
        }
    }
    for (i, &output) in outputs.iter().enumerate() {
        if output >= info.outputs.len() || outputs[..i].contains(&output) {
            return Err(EngineError(format!("bad output selection {outputs:?}")));
        }
    }
    Ok(())
}

/// The model at `index` of an engine, or an error naming the index.
pub fn model_info(engine: &dyn Engine, index: usize) -> Result<&ModelInfo, EngineError> {
    engine
        .models()
        .get(index)
        .ok_or_else(|| EngineError(format!("no model {index} is loaded")))
}

/// A model of the record API: its engine index and the index of its `probability` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordModel {
    pub index: usize,
    pub output: usize,
}

impl RecordModel {
    /// The model at `index`, if its graph is the record API's: one input `features` float32
    /// `[batch, 6]` and an output `probability` float32 `[batch]`.
    pub fn new(info: &ModelInfo, index: usize) -> Result<Self, String> {
        let features = TensorInfo::new(INPUT_NAME, DataType::Fp32, vec![-1, N_FEATURES as i64]);
        let takes_features = matches!(&info.inputs[..], [input]
            if input.name == INPUT_NAME
                && input.datatype == DataType::Fp32
                && input.shape.len() == 2
                && matches!(input.shape[1], -1 | 6));
        let output = info.outputs.iter().position(|o| {
            o.name == OUTPUT_NAME && o.datatype == DataType::Fp32 && o.shape.len() == 1
        });
        match output {
            Some(output) if takes_features => Ok(Self { index, output }),
            _ => {
                let list = |tensors: &[TensorInfo]| {
                    let items: Vec<String> = tensors
                        .iter()
                        .map(|t| format!("'{}' {} {:?}", t.name, t.datatype, t.shape))
                        .collect();
                    items.join(", ")
                };
                Err(format!(
                    "expected one input '{}' {} {:?} and an output '{OUTPUT_NAME}' FP32 [-1]; \
                     the graph has inputs {} and outputs {}",
                    features.name,
                    features.datatype,
                    features.shape,
                    list(&info.inputs),
                    list(&info.outputs)
                ))
            }
        }
    }

    /// The probabilities of `rows` feature rows (`features` row-major `[rows, 6]`), one per row,
    /// each in [0, 1].
    pub fn predict(
        &self,
        engine: &dyn Engine,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        self.run(engine, features, rows, false)
    }

    /// The same through [`Engine::warm_up`].
    pub fn warm_up(
        &self,
        engine: &dyn Engine,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        self.run(engine, features, rows, true)
    }

    fn run(
        &self,
        engine: &dyn Engine,
        features: &[f32],
        rows: usize,
        warm: bool,
    ) -> Result<Vec<f32>, EngineError> {
        check_features(features, rows)?;
        let shape = [rows, N_FEATURES];
        let input = [TensorView {
            shape: &shape,
            data: DataView::F32(features),
        }];
        let wanted = [self.output];
        let outputs = if warm {
            engine.warm_up(self.index, &input, &wanted)?
        } else {
            engine.infer(self.index, &input, &wanted)?
        };
        match <[Tensor; 1]>::try_from(outputs) {
            Ok(
                [
                    Tensor {
                        shape,
                        data: Data::F32(probabilities),
                    },
                ],
            ) if shape == [rows] => {
                check_output(&probabilities, rows)?;
                Ok(probabilities)
            }
            Ok([other]) => Err(EngineError(format!(
                "model answered {} {:?} for {rows} rows",
                other.data.datatype(),
                other.shape
            ))),
            Err(outputs) => Err(EngineError(format!(
                "model answered {} outputs for one",
                outputs.len()
            ))),
        }
    }
}

/// Check a record model's probabilities before they reach a client.
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

/// The feature slice must be exactly `[rows, 6]`, with at least one row.
pub fn check_features(features: &[f32], rows: usize) -> Result<(), EngineError> {
    if rows == 0 || Some(features.len()) != rows.checked_mul(N_FEATURES) {
        return Err(EngineError(format!(
            "{} features for {rows} rows of {N_FEATURES}",
            features.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titanic() -> ModelInfo {
        ModelInfo {
            inputs: vec![TensorInfo::new(INPUT_NAME, DataType::Fp32, vec![-1, 6])],
            outputs: vec![TensorInfo::new(OUTPUT_NAME, DataType::Fp32, vec![-1])],
        }
    }

    #[test]
    fn datatype_names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(DataType::from_name(t.name()), Some(t));
        }
        for name in ["fp32", "FLOAT", "BYTES", "BOOL", ""] {
            assert_eq!(DataType::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn accepts_checks_rank_and_fixed_dimensions() {
        let info = TensorInfo::new("x", DataType::Int32, vec![-1, 3]);
        assert!(info.accepts(&[1, 3]));
        assert!(info.accepts(&[1000, 3]));
        assert!(!info.accepts(&[1, 4]));
        assert!(!info.accepts(&[3]));
        assert!(!info.accepts(&[1, 3, 1]));
    }

    #[test]
    fn element_count_never_overflows() {
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[2, 3]), Some(6));
        assert_eq!(element_count(&[usize::MAX, 2]), None);
        assert_eq!(element_count(&[1 << 32, 1 << 32, 3]), None);
        assert_eq!(element_count(&[0, usize::MAX]), Some(0));
    }

    #[test]
    fn record_models_are_recognised_by_their_graph() {
        assert_eq!(
            RecordModel::new(&titanic(), 3),
            Ok(RecordModel {
                index: 3,
                output: 0
            })
        );
        let mut two = titanic();
        two.outputs
            .insert(0, TensorInfo::new("label", DataType::Int64, vec![-1]));
        assert_eq!(RecordModel::new(&two, 0).map(|r| r.output), Ok(1));
        let mut wide = titanic();
        wide.inputs[0].shape = vec![-1, 7];
        let error = RecordModel::new(&wide, 0).unwrap_err();
        assert!(error.contains("'features' FP32 [-1, 7]"), "{error}");
        let mut double = titanic();
        double.outputs[0].datatype = DataType::Fp64;
        assert!(RecordModel::new(&double, 0).is_err());
    }

    #[test]
    fn check_inputs_refuses_what_does_not_fit() {
        let info = titanic();
        let values = [0.0f32; 12];
        let view = |shape: &'static [usize], n: usize| TensorView {
            shape,
            data: DataView::F32(&values[..n]),
        };
        assert!(check_inputs(&info, &[view(&[2, 6], 12)], &[0]).is_ok());
        assert!(check_inputs(&info, &[view(&[2, 6], 11)], &[0]).is_err());
        assert!(check_inputs(&info, &[view(&[2, 5], 10)], &[0]).is_err());
        assert!(check_inputs(&info, &[], &[0]).is_err());
        assert!(check_inputs(&info, &[view(&[2, 6], 12)], &[1]).is_err());
        assert!(check_inputs(&info, &[view(&[2, 6], 12)], &[0, 0]).is_err());
        let ints = [0i64; 6];
        let wrong = TensorView {
            shape: &[1, 6],
            data: DataView::I64(&ints),
        };
        assert!(check_inputs(&info, &[wrong], &[0]).is_err());
    }

    #[test]
    fn unsupported_types_name_the_model_and_the_fix() {
        let message = unsupported_type(
            "m",
            "output",
            "output_probability",
            "seq(map(int64,tensor(float)))",
        );
        assert!(
            message.contains("model m: output 'output_probability'"),
            "{message}"
        );
        assert!(message.contains("zipmap=False"), "{message}");
        let message = unsupported_type("m", "input", "text", "tensor(string)");
        assert!(!message.contains("zipmap"), "{message}");
    }
}
