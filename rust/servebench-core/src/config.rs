//! Command line and environment, the same for every server binary.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_MODELS_DIR: &str = "outputs/models";
pub const HOST_ENV: &str = "SERVEBENCH_HOST";
pub const PORT_ENV: &str = "PORT";
pub const MODELS_DIR_ENV: &str = "SERVEBENCH_MODELS_DIR";
pub const MODELS_ENV: &str = "SERVEBENCH_MODELS";
pub const PACKS_ENV: &str = "SERVEBENCH_PACKS";
pub const ID_ENV: &str = "SERVEBENCH_SERVER_ID";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub models_dir: PathBuf,
    /// `(name, file)` pairs sorted by name; files are relative to `models_dir`.
    pub models: Vec<(String, String)>,
    /// The model packs, served over the Open Inference Protocol only: `(name, file)` pairs sorted
    /// by name, files relative to `models_dir`; names distinct from the models'.
    pub packs: Vec<(String, String)>,
    /// The server id /health reports.
    pub id: String,
}

/// The flags. Each falls back to its environment variable, then to its default; `--id`'s default
/// is the binary's and is set by [`command`].
#[derive(Debug, Parser)]
#[command(
    about = "Serve ONNX models over HTTP: /health, POST /predict/NAME and the Open Inference \
             Protocol under /v2 (docs/api.md)"
)]
struct Args {
    /// Serve FILE (an ONNX model, relative to DIR) as /predict/NAME; repeatable, or a
    /// comma-separated list
    #[arg(
        long = "model",
        value_name = "NAME=FILE",
        env = MODELS_ENV,
        value_delimiter = ',',
        value_parser = parse_model,
        required_unless_present = "packs"
    )]
    models: Vec<(String, String)>,

    /// Also serve FILE (an ONNX model, relative to DIR) as NAME over the Open Inference Protocol
    /// only (/v2/models/NAME); repeatable, or a comma-separated list
    #[arg(
        long = "packs",
        value_name = "NAME=FILE",
        env = PACKS_ENV,
        value_delimiter = ',',
        value_parser = parse_model
    )]
    packs: Vec<(String, String)>,

    /// Directory with preprocess.json and the models
    #[arg(long, value_name = "DIR", env = MODELS_DIR_ENV, default_value = DEFAULT_MODELS_DIR)]
    models_dir: PathBuf,

    /// Address to bind
    #[arg(
        long,
        env = HOST_ENV,
        default_value = DEFAULT_HOST,
        value_parser = NonEmptyStringValueParser::new()
    )]
    host: String,

    /// Port to bind
    #[arg(long, env = PORT_ENV, default_value_t = DEFAULT_PORT)]
    port: u16,

    /// Server id reported by /health
    #[arg(long, env = ID_ENV, value_parser = NonEmptyStringValueParser::new())]
    id: String,
}

/// The command line of a server whose id defaults to `default_id`. Environment variables are
/// read when it is built.
pub fn command(default_id: &str) -> clap::Command {
    Args::command().mut_arg("id", |arg| {
        arg.default_value(default_id.to_owned()).required(false)
    })
}

/// Flags win over the environment, the environment over the defaults; an empty variable counts
/// as unset, as in the Python servers. `args` starts with the program name. `--help` is an
/// error of kind [`ErrorKind::DisplayHelp`], which prints to stdout and has exit code 0.
pub fn parse<I, T>(command: clap::Command, args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = command.mut_args(|arg| {
        let empty = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some_and(|v| v.is_empty()));
        if empty { arg.env(None::<&str>) } else { arg }
    });
    let matches = command.try_get_matches_from_mut(args)?;
    let Args {
        mut models,
        mut packs,
        models_dir,
        host,
        port,
        id,
    } = Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    models.sort();
    packs.sort();
    if let Some(pair) = models.windows(2).find(|w| w[0].0 == w[1].0) {
        let message = format!("model {:?} is given twice", pair[0].0);
        return Err(command.error(ErrorKind::ValueValidation, message));
    }
    if let Some(pair) = packs.windows(2).find(|w| w[0].0 == w[1].0) {
        let message = format!("pack {:?} is given twice", pair[0].0);
        return Err(command.error(ErrorKind::ValueValidation, message));
    }
    if let Some((name, _)) = packs
        .iter()
        .find(|(p, _)| models.iter().any(|(m, _)| m == p))
    {
        let message = format!("pack {name:?} has the name of a model");
        return Err(command.error(ErrorKind::ValueValidation, message));
    }
    Ok(Config {
        host,
        port,
        models_dir,
        models,
        packs,
        id,
    })
}

/// `name=file`. The name becomes a URL path segment, so it is kept to a plain token.
fn parse_model(text: &str) -> Result<(String, String), &'static str> {
    let bad = "expected NAME=FILE with NAME made of letters, digits, '_', '-' or '.'";
    let (name, file) = text.trim().split_once('=').ok_or(bad)?;
    let (name, file) = (name.trim(), file.trim());
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || !name.chars().all(token) || file.is_empty() {
        return Err(bad);
    }
    Ok((name.to_string(), file.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Parses `args` as a binary whose id defaults to `rust-test`, with `env` as the only
    /// variables. Each call gives the variables names of its own, so that tests running at once,
    /// and the real variables `cargo test` may be run with, do not meet.
    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Config, clap::Error> {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "SERVEBENCH_CONFIG_TEST_{}_",
            CALLS.fetch_add(1, Ordering::Relaxed)
        );
        for (name, value) in env {
            // SAFETY: setting a variable races only with reads of the environment outside std's
            // lock, by C code; the unit tests of this crate run no C code.
            unsafe { std::env::set_var(format!("{prefix}{name}"), value) };
        }
        let command = command("rust-test").mut_args(|arg| {
            let renamed = arg
                .get_env()
                .map(|name| format!("{prefix}{}", name.to_string_lossy()));
            match renamed {
                Some(name) => arg.env(name),
                None => arg,
            }
        });
        let result = parse(command, ["servebench-test"].iter().chain(args));
        for (name, _) in env {
            // SAFETY: as above.
            unsafe { std::env::remove_var(format!("{prefix}{name}")) };
        }
        result
    }

    fn serve(args: &[&str], env: &[(&str, &str)]) -> Config {
        parse_with(args, env).unwrap_or_else(|e| panic!("{args:?} {env:?}: {e}"))
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> clap::Error {
        match parse_with(args, env) {
            Ok(config) => panic!("{args:?} {env:?} gave {config:?}"),
            Err(e) => e,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, f)| (n.to_string(), f.to_string()))
            .collect()
    }

    #[test]
    fn the_command_is_well_formed() {
        command("rust-test").debug_assert();
    }

    #[test]
    fn defaults() {
        let config = serve(&["--model", "m=m.onnx"], &[]);
        assert_eq!(
            config,
            Config {
                host: "127.0.0.1".into(),
                port: 8000,
                models_dir: "outputs/models".into(),
                models: pairs(&[("m", "m.onnx")]),
                packs: vec![],
                id: "rust-test".into(),
            }
        );
        // An empty variable is no variable.
        let empty = [
            ("PORT", ""),
            ("SERVEBENCH_MODELS_DIR", ""),
            ("SERVEBENCH_PACKS", ""),
            ("SERVEBENCH_HOST", ""),
            ("SERVEBENCH_SERVER_ID", ""),
        ];
        assert_eq!(serve(&["--model", "m=m.onnx"], &empty), config);
    }

    #[test]
    fn flags_beat_environment() {
        let env = [
            ("PORT", "9000"),
            ("SERVEBENCH_MODELS_DIR", "/env/models"),
            ("SERVEBENCH_HOST", "::1"),
            (
                "SERVEBENCH_MODELS",
                "pytorch_onnx=pytorch.onnx, lightgbm_onnx=lightgbm.onnx",
            ),
            ("SERVEBENCH_SERVER_ID", "env-id"),
            (
                "SERVEBENCH_PACKS",
                "two_inputs=packs/two_inputs/model.onnx,fixed=packs/fixed/model.onnx",
            ),
        ];
        assert_eq!(
            serve(&[], &env),
            Config {
                host: "::1".into(),
                port: 9000,
                models_dir: "/env/models".into(),
                models: pairs(&[
                    ("lightgbm_onnx", "lightgbm.onnx"),
                    ("pytorch_onnx", "pytorch.onnx")
                ]),
                packs: pairs(&[
                    ("fixed", "packs/fixed/model.onnx"),
                    ("two_inputs", "packs/two_inputs/model.onnx")
                ]),
                id: "env-id".into(),
            }
        );
        let args = [
            "--port",
            "9001",
            "--models-dir=/flag",
            "--host",
            "0.0.0.0",
            "--model",
            "b=b.onnx",
            "--model=a=sub/a.onnx",
            "--id",
            "flag-id",
            "--packs",
            "p=p.onnx,q=q/model.onnx",
        ];
        assert_eq!(
            serve(&args, &env),
            Config {
                host: "0.0.0.0".into(),
                port: 9001,
                models_dir: "/flag".into(),
                models: pairs(&[("a", "sub/a.onnx"), ("b", "b.onnx")]),
                packs: pairs(&[("p", "p.onnx"), ("q", "q/model.onnx")]),
                id: "flag-id".into(),
            }
        );
    }

    #[test]
    fn errors() {
        let m = ["--model", "m=m.onnx"];
        let bad_flags = [
            &["--port", "70000", m[0], m[1]][..],
            &["--port", "x", m[0], m[1]],
            &["--host", "", m[0], m[1]],
            &["--id", "", m[0], m[1]],
            &["--model", "m"],
            &["--model", "m=a", "--model", "m=b"],
            &["--model", "m=a", "--packs", "p"],
            &["--model", "m=a", "--packs", "p=a,p=b"],
            &["--model", "m=a", "--packs", "m=b"],
        ];
        for args in bad_flags {
            let e = error(args, &[]);
            let value = [ErrorKind::ValueValidation, ErrorKind::InvalidValue];
            assert!(value.contains(&e.kind()), "{args:?}: {e}");
        }
        let bad_variables = [
            ("PORT", "x"),
            ("PORT", "-1"),
            ("SERVEBENCH_MODELS", "m"),
            ("SERVEBENCH_MODELS", "=m.onnx"),
            ("SERVEBENCH_MODELS", "m="),
            ("SERVEBENCH_MODELS", "a/b=m.onnx"),
            ("SERVEBENCH_MODELS", "m=a.onnx,m=b.onnx"),
            ("SERVEBENCH_MODELS", "m=a.onnx,"),
            ("SERVEBENCH_PACKS", "p"),
            ("SERVEBENCH_PACKS", "p=a.onnx,p=b.onnx"),
        ];
        for variable in bad_variables {
            let args = if matches!(variable.0, "PORT" | "SERVEBENCH_PACKS") {
                &m[..]
            } else {
                &[]
            };
            let e = error(args, &[variable]);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{variable:?}: {e}");
        }
        assert_eq!(error(&["--port"], &[]).kind(), ErrorKind::InvalidValue);
        assert_eq!(error(&["--bogus"], &[]).kind(), ErrorKind::UnknownArgument);
        let none = error(&[], &[("SERVEBENCH_MODELS", "")]);
        assert_eq!(none.kind(), ErrorKind::MissingRequiredArgument);
        assert!(none.to_string().contains("--model <NAME=FILE>"), "{none}");
        // Model packs alone: no record model, and so no --model.
        let packs = serve(
            &[],
            &[
                ("SERVEBENCH_MODELS", ""),
                ("SERVEBENCH_PACKS", "p=packs/p/model.onnx"),
            ],
        );
        assert!(packs.models.is_empty());
        assert_eq!(packs.packs, pairs(&[("p", "packs/p/model.onnx")]));
        // A bad command line exits with status 2 and says what was wrong.
        let twice = error(&["--model", "m=a", "--model", "m=b"], &[]);
        assert_eq!(twice.exit_code(), 2);
        assert!(
            twice.to_string().contains("model \"m\" is given twice"),
            "{twice}"
        );
        let bad = error(&["--model", "a/b=m.onnx"], &[]);
        assert!(bad.to_string().contains("expected NAME=FILE"), "{bad}");
        let clash = error(&["--model", "m=a", "--packs", "m=b"], &[]);
        assert!(
            clash
                .to_string()
                .contains("pack \"m\" has the name of a model"),
            "{clash}"
        );
    }

    #[test]
    fn help_names_every_variable_and_the_binarys_id() {
        let help = error(&["--help"], &[]);
        assert_eq!((help.kind(), help.exit_code()), (ErrorKind::DisplayHelp, 0));
        assert_eq!(error(&["-h"], &[]).kind(), ErrorKind::DisplayHelp);
        let text = command("rust-ort").render_help().to_string();
        for needle in [
            "--model <NAME=FILE>",
            "--packs <NAME=FILE>",
            "--models-dir <DIR>",
            "--host <HOST>",
            "--port <PORT>",
            "--id <ID>",
            "[env: SERVEBENCH_MODELS=",
            "[env: SERVEBENCH_PACKS=",
            "[env: SERVEBENCH_MODELS_DIR=",
            "[env: SERVEBENCH_HOST=",
            "[env: PORT=",
            "[env: SERVEBENCH_SERVER_ID=",
            "[default: rust-ort]",
            "[default: outputs/models]",
            "[default: 127.0.0.1]",
            "[default: 8000]",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }
}
