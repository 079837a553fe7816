//! A servebench inference engine on tract, a pure Rust ONNX runtime (nothing to load at run time
//! but the models), usable by any Rust web layer.

use std::path::Path;
use std::sync::Arc;

use servebench_core::engine::{check_inputs, unsupported_type};
use servebench_core::{
    Data, DataType, DataView, Engine, EngineError, LoadRequest, ModelInfo, Tensor as Output,
    TensorInfo, TensorView,
};
use tract_onnx::pb::tensor_shape_proto::dimension;
use tract_onnx::pb::{self, type_proto};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::format_err;
use tract_onnx::tract_hir::infer::GenericFactoid;

/// An optimised plan is immutable and `run` takes `&self` (each call gets a fresh state), so one
/// plan per model is shared by all workers through an `Arc`, with no lock.
pub struct TractEngine {
    /// One plan per model, in [`LoadRequest::models`] order.
    plans: Vec<Arc<TypedRunnableModel>>,
    /// Each model's inputs and outputs, as its graph declares them.
    infos: Vec<ModelInfo>,
}

impl TractEngine {
    /// Load and optimise every model. Errors name the file; an input or output that is not a
    /// tensor of float, double, int64 or int32 is refused, naming it and the model.
    pub fn load(request: &LoadRequest) -> Result<Self, String> {
        let mut plans = Vec::with_capacity(request.models.len());
        let mut infos = Vec::with_capacity(request.models.len());
        for model in &request.models {
            let (plan, info) = load_plan(&model.name, &model.path).map_err(|e| match e {
                Refused(message) => format!("{message} ({})", model.path.display()),
                Failed(e) => format!("cannot load model {}: {e:#}", model.path.display()),
            })?;
            plans.push(plan);
            infos.push(info);
        }
        Ok(Self { plans, infos })
    }
}

/// Why a model cannot be served: a type the protocol does not serve, or tract's own error.
enum LoadError {
    Refused(String),
    Failed(TractError),
}
use LoadError::{Failed, Refused};

impl From<TractError> for LoadError {
    fn from(e: TractError) -> Self {
        Failed(e)
    }
}

fn datatype(dt: DatumType) -> Option<DataType> {
    match dt {
        DatumType::F32 => Some(DataType::Fp32),
        DatumType::F64 => Some(DataType::Fp64),
        DatumType::I64 => Some(DataType::Int64),
        DatumType::I32 => Some(DataType::Int32),
        _ => None,
    }
}

fn datum_type(datatype: DataType) -> DatumType {
    match datatype {
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Int64 => DatumType::I64,
        DataType::Int32 => DatumType::I32,
    }
}

/// The ONNX name of an element type, for messages: `tensor(string)`.
fn onnx_tensor_name(elem_type: i32) -> String {
    match pb::tensor_proto::DataType::try_from(elem_type) {
        Ok(t) => format!("tensor({})", format!("{t:?}").to_lowercase()),
        Err(_) => format!("tensor of element type {elem_type}"),
    }
}

/// A graph input's or output's declared element type, when it is a tensor of a served type.
fn declared_type<'a>(
    model: &str,
    role: &str,
    value: &'a pb::ValueInfoProto,
) -> Result<(DataType, &'a type_proto::Tensor), LoadError> {
    let name = &value.name;
    // tract's protobuf knows only tensor types: a sequence or a map reads as no type at all.
    let Some(type_proto::Value::TensorType(tensor)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        let kind = "sequence or map, not a tensor";
        return Err(Refused(unsupported_type(model, role, name, kind)));
    };
    let kind = onnx_tensor_name(tensor.elem_type);
    let datatype = DataType::ALL
        .into_iter()
        .find(|t| t.onnx_name() == kind)
        .ok_or_else(|| Refused(unsupported_type(model, role, name, &kind)))?;
    Ok((datatype, tensor))
}

/// A graph output as the graph declares it (what ONNX Runtime reports too): its element type,
/// and its shape with -1 for a dynamic dimension, or `None` when the graph gives no shape.
fn declared_output(
    model: &str,
    output: &pb::ValueInfoProto,
) -> Result<(DataType, Option<Vec<i64>>), LoadError> {
    let (datatype, tensor) = declared_type(model, "output", output)?;
    let shape = tensor.shape.as_ref().map(|shape| {
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(dimension::Value::DimValue(n)) if n >= 0 => n,
                _ => -1,
            })
            .collect()
    });
    Ok((datatype, shape))
}

fn load_plan(name: &str, path: &Path) -> Result<(Arc<TypedRunnableModel>, ModelInfo), LoadError> {
    // `onnx()` registers the ai.onnx.ml operators (TreeEnsembleClassifier among them) as well.
    let onnx = tract_onnx::onnx();
    let proto = onnx.proto_model_for_path(path)?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Failed(format_err!("the file holds no graph")))?;
    // The declared types first, inputs then outputs, before any operator is looked at: a
    // ZipMap, which tract does not implement, is refused for its output's type, with the fix.
    let constants: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for input in graph
        .input
        .iter()
        .filter(|i| !constants.contains(&i.name.as_str()))
    {
        declared_type(name, "input", input)?;
    }
    let declared = graph
        .output
        .iter()
        .map(|output| declared_output(name, output))
        .collect::<Result<Vec<_>, _>>()?;
    let folder = path.parent().and_then(Path::to_str);
    let parsed = onnx.parse(&proto, folder)?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(Failed(format_err!(
            "could not resolve inputs {:?}",
            parsed.unresolved_inputs
        )));
    }
    let mut model = parsed.model;

    // Inputs as the graph's facts give them. A dimension the graph names ("batch", "N") is a
    // symbol already, which keeps one plan valid for every size; one it leaves unknown gets a
    // symbol of its own.
    let mut inputs = Vec::new();
    for i in 0..model.input_outlets()?.len() {
        let input = model.node(model.input_outlets()?[i].node).name.clone();
        let fact = model.input_fact(i)?.clone();
        let dt = match fact.datum_type {
            GenericFactoid::Only(dt) => dt,
            GenericFactoid::Any => {
                return Err(Refused(unsupported_type(
                    name,
                    "input",
                    &input,
                    "value of no declared type",
                )));
            }
        };
        let datatype = datatype(dt).ok_or_else(|| {
            let kind = format!("tensor({})", format!("{dt:?}").to_lowercase());
            Refused(unsupported_type(name, "input", &input, &kind))
        })?;
        if fact.shape.is_open() {
            return Err(Failed(format_err!(
                "input '{input}' has no shape in the graph"
            )));
        }
        let mut dims: TVec<TDim> = tvec!();
        let mut shape = Vec::new();
        for (j, dim) in fact.shape.dims().enumerate() {
            let dim = match dim {
                GenericFactoid::Only(d) => d.clone(),
                GenericFactoid::Any => model.sym(&format!("unknown_{i}_{j}")).into(),
            };
            shape.push(dim.to_i64().unwrap_or(-1));
            dims.push(dim);
        }
        model.set_input_fact(i, InferenceFact::dt_shape(dt, dims))?;
        inputs.push(TensorInfo::new(input, datatype, shape));
    }

    let mut model = model.into_typed()?;
    label_binary_trees_from_both_classes(&mut model)?;
    let model = model.into_optimized()?;
    let mut outputs = Vec::with_capacity(declared.len());
    for (i, (output, (datatype, shape))) in graph.output.iter().zip(declared).enumerate() {
        let fact = model.output_fact(i)?;
        // An int64 the graph computes from shapes may be tract's TDim: cast when answering.
        let castable = datatype == DataType::Int64 && fact.datum_type == DatumType::TDim;
        if fact.datum_type != datum_type(datatype) && !castable {
            return Err(Failed(format_err!(
                "output '{}' is declared {} but computed as {:?}",
                output.name,
                datatype,
                fact.datum_type
            )));
        }
        let shape = shape.unwrap_or_else(|| {
            fact.shape
                .iter()
                .map(|d| d.to_i64().unwrap_or(-1))
                .collect()
        });
        outputs.push(TensorInfo::new(output.name.clone(), datatype, shape));
    }
    Ok((model.into_runnable()?, ModelInfo { inputs, outputs }))
}

/// tract 0.23's `TreeEnsembleClassifier`, for a binary classifier whose leaves weigh the positive
/// class alone (scikit-learn's forests and LightGBM, as their converters export them), builds the
/// probabilities as [1 - p, p] but takes the label's argmax over the scores before that step,
/// whose second column is all zeros: every label comes out as the first class. ONNX Runtime labels
/// by [1 - p, p]. Point the argmax at the two columns, as the probabilities output already is.
fn label_binary_trees_from_both_classes(model: &mut TypedModel) -> TractResult<()> {
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
    let misplaced: Vec<(usize, OutletId)> = model
        .nodes()
        .iter()
        .filter(|node| {
            node.op_as::<Reduce>()
                .is_some_and(|r| matches!(r.reducer, Reducer::ArgMax(_)))
        })
        .filter_map(|node| {
            let prefix = node.name.strip_suffix(".argmax")?;
            let both = model
                .node_id_by_name(&format!("{prefix}.binary_result"))
                .ok()?;
            let both = OutletId::new(both, 0);
            (node.inputs[0] != both).then_some((node.id, both))
        })
        .collect();
    for (argmax, both) in misplaced {
        let node = model.node(argmax);
        let patch = TypedModelPatch::replace_single_op(model, node, &[both], node.op.clone())?;
        patch.apply(model)?;
    }
    Ok(())
}

fn input_tensor(view: &TensorView<'_>) -> TractResult<Tensor> {
    match view.data {
        DataView::F32(v) => Tensor::from_shape(view.shape, v),
        DataView::F64(v) => Tensor::from_shape(view.shape, v),
        DataView::I64(v) => Tensor::from_shape(view.shape, v),
        DataView::I32(v) => Tensor::from_shape(view.shape, v),
    }
}

fn output(value: &Tensor, datatype: DataType) -> TractResult<Output> {
    let value = value.cast_to_dt(datum_type(datatype))?;
    let plain = value.try_as_plain_ram()?;
    let data = match datatype {
        DataType::Fp32 => Data::F32(plain.as_slice::<f32>()?.to_vec()),
        DataType::Fp64 => Data::F64(plain.as_slice::<f64>()?.to_vec()),
        DataType::Int64 => Data::I64(plain.as_slice::<i64>()?.to_vec()),
        DataType::Int32 => Data::I32(plain.as_slice::<i32>()?.to_vec()),
    };
    Ok(Output {
        shape: value.shape().to_vec(),
        data,
    })
}

impl Engine for TractEngine {
    fn models(&self) -> &[ModelInfo] {
        &self.infos
    }

    fn infer(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Output>, EngineError> {
        let (Some(plan), Some(info)) = (self.plans.get(model), self.infos.get(model)) else {
            return Err(EngineError(format!("no model {model} is loaded")));
        };
        check_inputs(info, inputs, outputs)?;
        let values = inputs
            .iter()
            .map(|view| input_tensor(view).map(IntoTValue::into_tvalue))
            .collect::<TractResult<TVec<TValue>>>()
            .map_err(EngineError::new)?;
        let results = plan.run(values).map_err(EngineError::new)?;
        if results.len() != info.outputs.len() {
            return Err(EngineError(format!(
                "{} outputs for {} in the graph",
                results.len(),
                info.outputs.len()
            )));
        }
        outputs
            .iter()
            .map(|&i| output(&results[i], info.outputs[i].datatype).map_err(EngineError::new))
            .collect()
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

    /// tests/vectors/v2.json through the router over this engine, on the example packs.
    #[test]
    fn the_v2_vectors_pass() {
        let served = conformance::served_from_env(2);
        let engine = TractEngine::load(&served.request).unwrap_or_else(|e| panic!("{e}"));
        let router = conformance::v2_router(engine, &served).unwrap_or_else(|e| panic!("{e}"));
        let vectors = conformance::v2_vectors();
        let failures = conformance::check_v2_vectors_blocking(&router, &vectors, true);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn models_of_other_types_are_refused_by_name() {
        let failures = conformance::check_unservable(TractEngine::load);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
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
