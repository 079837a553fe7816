//! A servebench inference engine on ONNX Runtime through `ort`, usable by any Rust web layer.
//! The runtime library is not linked or downloaded at build time; [`OrtEngine::load`] loads it
//! from the file `ORT_DYLIB_PATH` names.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};
use servebench_core::engine::{check_inputs, unsupported_type};
use servebench_core::{
    Data, DataType, DataView, Engine, EngineError, LoadRequest, ModelInfo, Tensor, TensorInfo,
    TensorView,
};

/// The environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// `Session::run` takes `&mut self`, so a session serves one call at a time. One global session
/// behind a lock would serialise every worker on it; instead each model gets one session per
/// tokio worker thread, and a worker always takes the same one (see [`slot`]). The mutex is then
/// uncontended and costs an atomic swap. Sessions share nothing mutable, and with one intra-op
/// thread each, ONNX Runtime runs the graph on the calling worker without a thread pool of its
/// own, so the server uses exactly as many cores as it has workers.
pub struct OrtEngine {
    /// One pool per model, in [`LoadRequest::models`] order.
    pools: Vec<Vec<Mutex<Session>>>,
    /// Each model's inputs and outputs, as its sessions report them.
    infos: Vec<ModelInfo>,
    // Sessions hold their own handle on the environment; this one keeps it alive while the
    // engine exists, whatever ort does internally.
    _environment: Environment,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A number fixed per thread on first use, handed out in order. The tokio workers are the only
/// threads that run inference inline, so with one session per worker they get one each.
fn slot() -> usize {
    SLOT.with(|slot| match slot.get() {
        Some(n) => n,
        None => {
            let n = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
            slot.set(Some(n));
            n
        }
    })
}

impl OrtEngine {
    /// Load ONNX Runtime, then open one session per model and worker, and read each model's
    /// inputs and outputs. Errors name the file; an input or output that is not a tensor of
    /// float, double, int64 or int32 is refused, naming it and the model.
    pub fn load(request: &LoadRequest) -> Result<Self, String> {
        let dylib = match std::env::var_os(DYLIB_ENV) {
            Some(path) if !path.is_empty() => path,
            _ => {
                return Err(format!(
                    "{DYLIB_ENV} is not set. Set it to the ONNX Runtime shared library, e.g. \
                     .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0"
                ));
            }
        };
        let dylib = Path::new(&dylib);
        if !dylib.is_file() {
            return Err(format!(
                "{DYLIB_ENV}={} is not a file; point it at libonnxruntime.so",
                dylib.display()
            ));
        }
        let environment = environment(dylib)?;

        let mut pools = Vec::with_capacity(request.models.len());
        let mut infos = Vec::with_capacity(request.models.len());
        for model in &request.models {
            let first = open_session(&environment, &model.path)?;
            let info = model_info(&model.name, &first)
                .map_err(|e| format!("{e} ({})", model.path.display()))?;
            let mut pool = vec![Mutex::new(first)];
            for _ in 1..request.workers.max(1) {
                pool.push(Mutex::new(open_session(&environment, &model.path)?));
            }
            pools.push(pool);
            infos.push(info);
        }
        Ok(Self {
            pools,
            infos,
            _environment: environment,
        })
    }
}

/// ONNX Runtime's environment, loaded from `dylib` and built once: ort allows one per process,
/// ever, so every engine of the process (the tests load several) shares it.
fn environment(dylib: &Path) -> Result<Environment, String> {
    static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);
    let mut current = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(environment) = current.as_ref() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(dylib)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", dylib.display()))?
        .with_name("servebench")
        .build()
        .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))?;
    *current = Some(environment.clone());
    Ok(environment)
}

/// The same options as the Python servers' `onnx_session_options`: one thread, sequential
/// execution, no spinning, every graph optimisation. In ort 2.0.0-rc.15 `Level3` means
/// ORT_ENABLE_LAYOUT (3); the old "level 3", ORT_ENABLE_ALL (99), is now `All`.
fn open_session(environment: &Environment, path: &Path) -> Result<Session, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot load model {}: {e}", path.display());
    Session::builder(environment)
        .map_err(|e| fail(&e))?
        .with_intra_threads(1)
        .map_err(|e| fail(&e))?
        .with_inter_threads(1)
        .map_err(|e| fail(&e))?
        .with_parallel_execution(false)
        .map_err(|e| fail(&e))?
        // Spinning would keep the worker's core busy after each run, taking it from the HTTP
        // layer and from the other workers.
        .with_config_entry("session.intra_op.allow_spinning", "0")
        .map_err(|e| fail(&e))?
        .with_config_entry("session.inter_op.allow_spinning", "0")
        .map_err(|e| fail(&e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| fail(&e))?
        .commit_from_file(path)
        .map_err(|e| fail(&e))
}

fn datatype(ty: TensorElementType) -> Option<DataType> {
    match ty {
        TensorElementType::Float32 => Some(DataType::Fp32),
        TensorElementType::Float64 => Some(DataType::Fp64),
        TensorElementType::Int64 => Some(DataType::Int64),
        TensorElementType::Int32 => Some(DataType::Int32),
        _ => None,
    }
}

/// An element type by its ONNX name, for messages.
fn element_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float".into(),
        TensorElementType::Float64 => "double".into(),
        TensorElementType::Float16 => "float16".into(),
        TensorElementType::Bfloat16 => "bfloat16".into(),
        TensorElementType::Int64 => "int64".into(),
        TensorElementType::Int32 => "int32".into(),
        TensorElementType::Int16 => "int16".into(),
        TensorElementType::Int8 => "int8".into(),
        TensorElementType::Uint64 => "uint64".into(),
        TensorElementType::Uint32 => "uint32".into(),
        TensorElementType::Uint16 => "uint16".into(),
        TensorElementType::Uint8 => "uint8".into(),
        TensorElementType::Bool => "bool".into(),
        TensorElementType::String => "string".into(),
        other => other.to_string(),
    }
}

/// A type as ONNX writes it: `tensor(string)`, `seq(map(int64,tensor(float)))`.
fn onnx_kind(dtype: &ValueType) -> String {
    match dtype {
        ValueType::Tensor { ty, .. } => format!("tensor({})", element_name(*ty)),
        ValueType::Sequence(inner) => format!("seq({})", onnx_kind(inner)),
        ValueType::Map { key, value } => {
            format!(
                "map({},tensor({}))",
                element_name(*key),
                element_name(*value)
            )
        }
        ValueType::Optional(inner) => format!("optional({})", onnx_kind(inner)),
    }
}

/// A session input or output as served: a tensor of a served element type, its shape with -1
/// for a dynamic dimension, as ONNX Runtime reads the graph.
fn tensor_info(
    model: &str,
    role: &str,
    name: &str,
    dtype: &ValueType,
) -> Result<TensorInfo, String> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => match datatype(*ty) {
            Some(datatype) => Ok(TensorInfo::new(
                name,
                datatype,
                shape.iter().map(|&d| d.max(-1)).collect(),
            )),
            None => Err(unsupported_type(model, role, name, &onnx_kind(dtype))),
        },
        other => Err(unsupported_type(model, role, name, &onnx_kind(other))),
    }
}

fn model_info(model: &str, session: &Session) -> Result<ModelInfo, String> {
    let inputs = session
        .inputs()
        .iter()
        .map(|i| tensor_info(model, "input", i.name(), i.dtype()))
        .collect::<Result<_, _>>()?;
    let outputs = session
        .outputs()
        .iter()
        .map(|o| tensor_info(model, "output", o.name(), o.dtype()))
        .collect::<Result<_, _>>()?;
    Ok(ModelInfo { inputs, outputs })
}

impl OrtEngine {
    fn pool(&self, model: usize) -> Result<&[Mutex<Session>], EngineError> {
        match self.pools.get(model) {
            Some(pool) if !pool.is_empty() => Ok(pool),
            _ => Err(EngineError(format!("no model {model} is loaded"))),
        }
    }

    /// The calling thread's own session, which is free for a tokio worker; a thread of the
    /// blocking pool (a large V2 request) takes any free one, and waits only when all are busy.
    fn session(&self, model: usize) -> Result<MutexGuard<'_, Session>, EngineError> {
        let pool = self.pool(model)?;
        let own = slot() % pool.len();
        for k in 0..pool.len() {
            match pool[(own + k) % pool.len()].try_lock() {
                Ok(session) => return Ok(session),
                // A poisoned lock only means an earlier call panicked; the session is sound.
                Err(TryLockError::Poisoned(e)) => return Ok(e.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        Ok(pool[own].lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn input_value<'a>(tensor: &TensorView<'a>) -> Result<SessionInputValue<'a>, EngineError> {
    let shape = tensor.shape;
    Ok(match tensor.data {
        DataView::F32(v) => TensorRef::from_array_view((shape, v))
            .map_err(EngineError::new)?
            .into(),
        DataView::F64(v) => TensorRef::from_array_view((shape, v))
            .map_err(EngineError::new)?
            .into(),
        DataView::I64(v) => TensorRef::from_array_view((shape, v))
            .map_err(EngineError::new)?
            .into(),
        DataView::I32(v) => TensorRef::from_array_view((shape, v))
            .map_err(EngineError::new)?
            .into(),
    })
}

fn output_tensor(value: &DynValue, datatype: DataType) -> Result<Tensor, EngineError> {
    fn extract<T: ort::value::PrimitiveTensorElementType + Copy>(
        value: &DynValue,
    ) -> Result<(Vec<usize>, Vec<T>), EngineError> {
        let (shape, values) = value.try_extract_tensor::<T>().map_err(EngineError::new)?;
        let shape = shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(EngineError::new))
            .collect::<Result<_, _>>()?;
        Ok((shape, values.to_vec()))
    }
    let (shape, data) = match datatype {
        DataType::Fp32 => extract::<f32>(value).map(|(s, v)| (s, Data::F32(v)))?,
        DataType::Fp64 => extract::<f64>(value).map(|(s, v)| (s, Data::F64(v)))?,
        DataType::Int64 => extract::<i64>(value).map(|(s, v)| (s, Data::I64(v)))?,
        DataType::Int32 => extract::<i32>(value).map(|(s, v)| (s, Data::I32(v)))?,
    };
    Ok(Tensor { shape, data })
}

fn run(
    session: &mut Session,
    info: &ModelInfo,
    inputs: &[TensorView<'_>],
    outputs: &[usize],
) -> Result<Vec<Tensor>, EngineError> {
    check_inputs(info, inputs, outputs)?;
    let results: SessionOutputs<'_> = if let [input] = inputs {
        // The record API's case, without a vector of inputs.
        session.run([input_value(input)?])
    } else {
        let values = inputs
            .iter()
            .map(input_value)
            .collect::<Result<Vec<_>, _>>()?;
        session.run(values.as_slice())
    }
    .map_err(EngineError::new)?;
    if results.len() != info.outputs.len() {
        return Err(EngineError(format!(
            "{} outputs for {} in the graph",
            results.len(),
            info.outputs.len()
        )));
    }
    outputs
        .iter()
        .map(|&i| output_tensor(&results[i], info.outputs[i].datatype))
        .collect()
}

impl Engine for OrtEngine {
    fn models(&self) -> &[ModelInfo] {
        &self.infos
    }

    fn infer(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        let mut session = self.session(model)?;
        run(&mut session, &self.infos[model], inputs, outputs)
    }

    fn warm_up(
        &self,
        model: usize,
        inputs: &[TensorView<'_>],
        outputs: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        let mut first = None;
        for session in self.pool(model)? {
            let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
            let out = run(&mut session, &self.infos[model], inputs, outputs)?;
            first.get_or_insert(out);
        }
        first.ok_or_else(|| EngineError::new("no sessions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use servebench_core::conformance;

    #[test]
    fn real_models_match_python() {
        let (dir, request) = conformance::load_request_from_env(3);
        assert!(
            std::env::var_os(DYLIB_ENV).is_some_and(|p| !p.is_empty()),
            "{DYLIB_ENV} must be set to ONNX Runtime's shared library, e.g. \
             {DYLIB_ENV}=$(.venv/bin/python -m servebench.ort_dylib)"
        );
        let engine = OrtEngine::load(&request).unwrap_or_else(|e| panic!("{e}"));
        let sizes: Vec<usize> = engine.pools.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3; request.models.len()]);
        let (rows, largest) = conformance::check_engine(&engine, &dir, &request.models, 1e-5)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "ort: {rows} rows from {} agree with Python (largest difference {largest:e})",
            dir.display()
        );
        // Every pooled session was built the same way and answers the same.
        let features = [3.0, 1.0, -0.5, 1.0, 0.0, -0.5];
        let input = [TensorView {
            shape: &[1, 6],
            data: DataView::F32(&features),
        }];
        for (pool, info) in engine.pools.iter().zip(&engine.infos) {
            let answers: Vec<Vec<Tensor>> = pool
                .iter()
                .map(|s| run(&mut s.lock().unwrap(), info, &input, &[0]).unwrap())
                .collect();
            assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        }
    }

    fn dylib() {
        assert!(
            std::env::var_os(DYLIB_ENV).is_some_and(|p| !p.is_empty()),
            "{DYLIB_ENV} must be set to ONNX Runtime's shared library, e.g. \
             {DYLIB_ENV}=$(.venv/bin/python -m servebench.ort_dylib)"
        );
    }

    /// tests/vectors/v2.json through the router over this engine, on the example packs.
    #[test]
    fn the_v2_vectors_pass() {
        dylib();
        let served = conformance::served_from_env(2);
        let engine = OrtEngine::load(&served.request).unwrap_or_else(|e| panic!("{e}"));
        let router = conformance::v2_router(engine, &served).unwrap_or_else(|e| panic!("{e}"));
        let vectors = conformance::v2_vectors();
        let failures = conformance::check_v2_vectors_blocking(&router, &vectors, true);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn models_of_other_types_are_refused_by_name() {
        dylib();
        let failures = conformance::check_unservable(OrtEngine::load);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A session held by another thread (a large V2 request on the blocking pool) does not make
    /// a worker wait: it takes another.
    #[test]
    fn a_busy_session_is_passed_over() {
        dylib();
        let (_, request) = conformance::load_request_from_env(2);
        let engine = OrtEngine::load(&request).unwrap_or_else(|e| panic!("{e}"));
        let _held = engine.pools[0][slot() % 2].lock().unwrap();
        let features = [3.0, 1.0, -0.5, 1.0, 0.0, -0.5];
        let input = [TensorView {
            shape: &[1, 6],
            data: DataView::F32(&features),
        }];
        let out = engine.infer(0, &input, &[0]).unwrap();
        assert_eq!(out[0].shape, [1]);
    }

    #[test]
    fn a_model_that_is_not_onnx_fails_with_its_path() {
        if std::env::var_os(DYLIB_ENV).is_none_or(|p| p.is_empty()) {
            panic!("{DYLIB_ENV} must be set to ONNX Runtime's shared library");
        }
        let dir = std::env::temp_dir().join(format!("servebench-ort-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.onnx");
        std::fs::write(&path, b"not a model").unwrap();
        let request = LoadRequest {
            models: vec![servebench_core::ModelSpec {
                name: "broken".into(),
                path: path.clone(),
            }],
            workers: 1,
        };
        let message = OrtEngine::load(&request).err().unwrap();
        assert!(message.contains(&path.display().to_string()), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
