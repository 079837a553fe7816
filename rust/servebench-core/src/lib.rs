//! Everything the servebench Rust servers share: the HTTP contract (docs/api.md) on axum, the
//! preprocessing of preprocess.json, configuration, the transport and start-up. A server binary
//! only adds an [`Engine`].

pub mod config;
pub mod conformance;
pub mod contract;
pub mod engine;
pub mod http;
pub mod preprocess;
pub mod serve;
pub mod v2;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub use contract::{Passenger, Payload, Sex};
pub use engine::{
    Data, DataType, DataView, Engine, EngineError, INPUT_NAME, LoadRequest, ModelInfo, ModelSpec,
    OUTPUT_NAME, RecordModel, Tensor, TensorInfo, TensorView,
};
pub use preprocess::{N_FEATURES, Preprocessor};

use config::Config;

/// Parse the command line, load and warm the models, then serve until SIGINT or SIGTERM.
/// `default_id` is the server id when neither `--id` nor `SERVEBENCH_SERVER_ID` gives one;
/// `load` builds the engine from the model files.
pub fn run<E, F>(default_id: &str, load: F) -> ExitCode
where
    E: Engine,
    F: FnOnce(&LoadRequest) -> Result<E, String>,
{
    let config = match config::parse(config::command(default_id), std::env::args_os()) {
        Ok(config) => config,
        // --help arrives here too: clap prints it to stdout for status 0, and a bad command line
        // to stderr for status 2.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match start(&config, load) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", config.id);
            ExitCode::FAILURE
        }
    }
}

fn start<E, F>(config: &Config, load: F) -> Result<(), String>
where
    E: Engine,
    F: FnOnce(&LoadRequest) -> Result<E, String>,
{
    let dir = &config.models_dir;
    // A run of model packs alone serves no record model and has no preprocessing.
    let preprocessor = if config.models.is_empty() {
        Preprocessor::identity()
    } else {
        Preprocessor::load(&dir.join("preprocess.json"))?
    };
    // The record API's models, then the packs: a model's engine index is its place here.
    let models = config
        .models
        .iter()
        .chain(&config.packs)
        .map(|(name, file)| {
            let path = dir.join(file);
            check_readable(&path)?;
            Ok(ModelSpec {
                name: name.clone(),
                path,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    // available_parallelism honours the CPU affinity mask, so `taskset` sizes the server.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = load(&LoadRequest {
        models: models.clone(),
        workers,
    })?;
    if engine.models().len() != models.len() {
        return Err(format!(
            "the engine loaded {} models of {}",
            engine.models().len(),
            models.len()
        ));
    }
    let names = |list: &[(String, String)]| list.iter().map(|(name, _)| name.clone()).collect();
    let app = http::App::new(
        &config.id,
        names(&config.models),
        names(&config.packs),
        Arc::new(engine),
        preprocessor,
    )
    .map_err(|e| {
        // A record model whose graph is not the record API's: name its file.
        match models
            .iter()
            .find(|m| e.starts_with(&format!("model {}:", m.name)))
        {
            Some(m) => format!("{e} ({})", m.path.display()),
            None => e,
        }
    })?;
    warm_up(&config.id, &app, &models)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime.block_on(async {
        let (host, port) = (config.host.as_str(), config.port);
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
        if let Ok(address) = listener.local_addr() {
            eprintln!(
                "{}: listening on http://{address} with {workers} worker thread(s)",
                config.id
            );
        }
        let router = http::router(Arc::new(app));
        serve::serve(
            listener,
            router,
            &serve::Limits::default(),
            serve::shutdown_signal(),
        )
        .await;
        Ok(())
    })
}

fn check_readable(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path).and_then(|file| file.metadata()) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(format!(
            "model file {} is not a regular file",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("missing model file {}", path.display()))
        }
        Err(e) => Err(format!("cannot read model file {}: {e}", path.display())),
    }
}

/// Run every record model (every copy of it, for engines that keep several) on a batch of two
/// and on a single row, and insist on sane, batch-independent answers before serving; then run
/// every pack once on zeros (a model that refuses zeros is still served: warming up is for speed).
fn warm_up(id: &str, app: &http::App, models: &[ModelSpec]) -> Result<(), String> {
    let passengers = [
        Passenger {
            pclass: 3,
            sex: Sex::Male,
            age: Some(22.0),
            sibsp: 1,
            parch: 0,
            fare: 7.25,
        },
        Passenger {
            pclass: 1,
            sex: Sex::Female,
            age: None,
            sibsp: 1,
            parch: 0,
            fare: 71.2833,
        },
    ];
    let features = app.preprocessor().transform(&passengers);
    let engine = app.engine();
    for record in app.record_models() {
        let model = &models[record.index];
        let fail = |e: EngineError| {
            format!(
                "warm-up of {} ({}) failed: {e}",
                model.name,
                model.path.display()
            )
        };
        let batch = record.warm_up(engine, &features, 2).map_err(fail)?;
        let single = record
            .predict(engine, &features[..N_FEATURES], 1)
            .map_err(fail)?;
        if (single[0] - batch[0]).abs() > 1e-5 {
            return Err(fail(EngineError(format!(
                "batch and single-row answers differ: {} vs {}",
                batch[0], single[0]
            ))));
        }
        eprintln!(
            "{id}: {} ready (warm-up probabilities {batch:?})",
            model.name
        );
    }
    for (index, model) in models.iter().enumerate() {
        if app.record_models().iter().any(|r| r.index == index) {
            continue;
        }
        match v2::warm_up(engine, index) {
            Ok(()) => eprintln!("{id}: {} ready (Open Inference Protocol only)", model.name),
            Err(e) => eprintln!(
                "{id}: {} ready (Open Inference Protocol only); warm-up on zeros failed: {e}",
                model.name
            ),
        }
    }
    Ok(())
}
