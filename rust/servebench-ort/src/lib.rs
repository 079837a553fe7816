//! A servebench inference engine on ONNX Runtime through `ort`, usable by any Rust web layer.
//! The runtime library is not linked or downloaded at build time; [`OrtEngine::load`] loads it
//! from the file `ORT_DYLIB_PATH` names.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use servebench_core::engine::check_input;
use servebench_core::{Engine, EngineError, INPUT_NAME, LoadRequest, N_FEATURES, OUTPUT_NAME};

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
    // Sessions hold their own handle on the environment; this one keeps it alive while the
    // engine exists, whatever ort does internally.
    _environment: Environment,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A number fixed per thread on first use, handed out in order. The tokio workers are the only
/// threads that predict while serving, so with one session per worker they get one each.
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
    /// Load ONNX Runtime, then open one session per model and worker. Errors name the file.
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
        let environment = ort::init_from(dylib)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", dylib.display()))?
            .with_name("servebench")
            .build()
            .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))?;

        let pools = request
            .models
            .iter()
            .map(|model| {
                (0..request.workers.max(1))
                    .map(|_| open_session(&environment, &model.path).map(Mutex::new))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pools,
            _environment: environment,
        })
    }
}

/// The same options as the Python servers' `onnx_session_options`: one thread, sequential
/// execution, no spinning, every graph optimisation. In ort 2.0.0-rc.15 `Level3` means
/// ORT_ENABLE_LAYOUT (3); the old "level 3", ORT_ENABLE_ALL (99), is now `All`.
fn open_session(environment: &Environment, path: &Path) -> Result<Session, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot load model {}: {e}", path.display());
    let session = Session::builder(environment)
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
        .map_err(|e| fail(&e))?;
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    if inputs != [INPUT_NAME] || outputs != [OUTPUT_NAME] {
        return Err(fail(&format!(
            "expected one input {INPUT_NAME:?} and one output {OUTPUT_NAME:?}, found inputs \
             {inputs:?} and outputs {outputs:?}"
        )));
    }
    Ok(session)
}

impl OrtEngine {
    fn pool(&self, model: usize) -> Result<&[Mutex<Session>], EngineError> {
        match self.pools.get(model) {
            Some(pool) if !pool.is_empty() => Ok(pool),
            _ => Err(EngineError(format!("no model {model} is loaded"))),
        }
    }
}

fn run(session: &Mutex<Session>, features: &[f32], rows: usize) -> Result<Vec<f32>, EngineError> {
    check_input(features, rows)?;
    // A poisoned lock only means an earlier call panicked; the session itself is still sound.
    let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
    let input =
        TensorRef::from_array_view(([rows, N_FEATURES], features)).map_err(EngineError::new)?;
    let outputs = session.run(ort::inputs![input]).map_err(EngineError::new)?;
    let output = outputs
        .get(OUTPUT_NAME)
        .ok_or_else(|| EngineError::new("no output named probability"))?;
    let (shape, values) = output
        .try_extract_tensor::<f32>()
        .map_err(EngineError::new)?;
    if **shape != [rows as i64] {
        return Err(EngineError(format!(
            "output shape {shape:?} for {rows} rows"
        )));
    }
    Ok(values.to_vec())
}

impl Engine for OrtEngine {
    fn predict(
        &self,
        model: usize,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let pool = self.pool(model)?;
        run(&pool[slot() % pool.len()], features, rows)
    }

    fn warm_up(
        &self,
        model: usize,
        features: &[f32],
        rows: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let mut first = None;
        for session in self.pool(model)? {
            let out = run(session, features, rows)?;
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
        for pool in &engine.pools {
            let answers: Vec<Vec<f32>> =
                pool.iter().map(|s| run(s, &features, 1).unwrap()).collect();
            assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        }
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
