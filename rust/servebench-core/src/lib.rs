//! Everything the servebench Rust servers share: the HTTP contract (docs/api.md), request
//! validation and preprocessing identical to the Python reference, configuration, and start-up.
//! A server binary only adds an [`Engine`].

pub mod config;
pub mod conformance;
pub mod contract;
pub mod engine;
pub mod http;
pub mod json;
pub mod preprocess;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::serve::ListenerExt;

pub use engine::{Engine, EngineError, INPUT_NAME, LoadRequest, Model, OUTPUT_NAME};
pub use preprocess::{N_FEATURES, Preprocessor};

use config::{Command, Config};
use contract::{Passenger, Sex};
use http::App;

/// Parse the command line, load and warm the models, then serve until SIGINT or SIGTERM.
/// `framework` is the id /health reports; `load` builds the engine from the model files.
pub fn run<E, F>(framework: &'static str, load: F) -> ExitCode
where
    E: Engine,
    F: FnOnce(&LoadRequest) -> Result<E, String>,
{
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| framework.to_string());
    let config = match config::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Help) => {
            print!("{}", config::usage(&program));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{program}: {e}\n{}", config::usage(&program));
            return ExitCode::from(2);
        }
    };
    match start(framework, &config, load) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{framework}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start<E, F>(framework: &'static str, config: &Config, load: F) -> Result<(), String>
where
    E: Engine,
    F: FnOnce(&LoadRequest) -> Result<E, String>,
{
    let dir = &config.models_dir;
    let preprocessor = Preprocessor::load(&dir.join("preprocess.json"))?;
    let models = Model::ALL
        .into_iter()
        .map(|model| {
            let path = dir.join(model.file());
            check_readable(&path)?;
            Ok((model, path))
        })
        .collect::<Result<Vec<_>, String>>()?;
    // available_parallelism honours the CPU affinity mask, so `taskset` sizes the server.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = load(&LoadRequest { models, workers })?;
    warm_up(framework, &engine, &preprocessor)?;

    let app = Arc::new(App::new(framework, Arc::new(engine), preprocessor));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime.block_on(serve(app, &config.host, config.port, workers))
}

fn check_readable(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(file) => match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(()),
            Ok(_) => Err(format!(
                "model file {} is not a regular file",
                path.display()
            )),
            Err(e) => Err(format!("cannot read model file {}: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("missing model file {}", path.display()))
        }
        Err(e) => Err(format!("cannot read model file {}: {e}", path.display())),
    }
}

/// Run every model once (every copy of it, for engines that keep several) on a batch of two
/// and once on a single row, and insist on sane, batch-independent answers before serving.
fn warm_up(
    framework: &str,
    engine: &dyn Engine,
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
    for model in Model::ALL {
        let fail = |e: EngineError| format!("warm-up of {} failed: {e}", model.name());
        let batch = engine.warm_up(model, &features, 2).map_err(fail)?;
        engine::check_output(&batch, 2).map_err(fail)?;
        let single = engine
            .predict(model, &features[..N_FEATURES], 1)
            .map_err(fail)?;
        engine::check_output(&single, 1).map_err(fail)?;
        if (single[0] - batch[0]).abs() > 1e-5 {
            return Err(fail(EngineError(format!(
                "batch and single-row answers differ: {} vs {}",
                batch[0], single[0]
            ))));
        }
        eprintln!(
            "{framework}: {} ready (warm-up probabilities {batch:?})",
            model.name()
        );
    }
    Ok(())
}

async fn serve(app: Arc<App>, host: &str, port: u16, workers: usize) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    eprintln!(
        "{}: listening on http://{address} with {workers} worker thread(s)",
        app.framework()
    );
    // Small responses should leave at once rather than wait on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
