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

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub use contract::{Passenger, Payload, Sex};
pub use engine::{Engine, EngineError, INPUT_NAME, LoadRequest, ModelSpec, OUTPUT_NAME};
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
    let preprocessor = Preprocessor::load(&dir.join("preprocess.json"))?;
    let models = config
        .models
        .iter()
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
    warm_up(&config.id, &engine, &models, &preprocessor)?;

    let names = models.into_iter().map(|m| m.name).collect();
    let app = http::App::new(&config.id, names, Arc::new(engine), preprocessor);
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

/// Run every model (every copy of it, for engines that keep several) on a batch of two and on a
/// single row, and insist on sane, batch-independent answers before serving.
fn warm_up(
    id: &str,
    engine: &dyn Engine,
    models: &[ModelSpec],
    preprocessor: &Preprocessor,
) -> Result<(), String> {
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
    let features = preprocessor.transform(&passengers);
    for (index, model) in models.iter().enumerate() {
        let fail = |e: EngineError| {
            format!(
                "warm-up of {} ({}) failed: {e}",
                model.name,
                model.path.display()
            )
        };
        let batch = engine.warm_up(index, &features, 2).map_err(fail)?;
        engine::check_output(&batch, 2).map_err(fail)?;
        let single = engine
            .predict(index, &features[..N_FEATURES], 1)
            .map_err(fail)?;
        engine::check_output(&single, 1).map_err(fail)?;
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
    Ok(())
}
