//! Command line and environment, the same for every server binary.

use std::path::PathBuf;

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_MODELS_DIR: &str = "outputs/models";
pub const HOST_ENV: &str = "SERVEBENCH_HOST";
pub const PORT_ENV: &str = "PORT";
pub const MODELS_DIR_ENV: &str = "SERVEBENCH_MODELS_DIR";
pub const MODELS_ENV: &str = "SERVEBENCH_MODELS";
pub const ID_ENV: &str = "SERVEBENCH_SERVER_ID";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub models_dir: PathBuf,
    /// `(name, file)` pairs sorted by name; files are relative to `models_dir`.
    pub models: Vec<(String, String)>,
    /// The server id /health reports.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve(Config),
    Help,
}

pub fn usage(program: &str, default_id: &str) -> String {
    format!(
        "usage: {program} --model NAME=FILE [--model NAME=FILE ...] [--models-dir DIR]\n\
         \x20      [--host HOST] [--port PORT] [--id ID]\n\
         \n\
         --model NAME=FILE  serve FILE (an ONNX model, relative to DIR) as /predict/NAME;\n\
         \x20                  repeatable (default ${MODELS_ENV}, \"name=file,name=file\")\n\
         --models-dir DIR   directory with preprocess.json and the models\n\
         \x20                  (default ${MODELS_DIR_ENV}, else {DEFAULT_MODELS_DIR})\n\
         --host HOST        address to bind (default ${HOST_ENV}, else {DEFAULT_HOST})\n\
         --port PORT        port to bind (default ${PORT_ENV}, else {DEFAULT_PORT})\n\
         --id ID            server id reported by /health (default ${ID_ENV}, else {default_id})\n"
    )
}

/// Flags win over the environment, the environment over the defaults. `args` excludes the
/// program name; `env` looks a variable up.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
    default_id: &str,
) -> Result<Command, String> {
    let (mut host, mut port, mut models_dir, mut id) = (None, None, None, None);
    let mut models = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if matches!(flag, "-h" | "--help") {
            return Ok(Command::Help);
        }
        if !matches!(
            flag,
            "--host" | "--port" | "--models-dir" | "--model" | "--id"
        ) {
            return Err(format!("unknown argument {arg:?}"));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag {
            "--host" => host = Some(value),
            "--port" => port = Some(value),
            "--models-dir" => models_dir = Some(value),
            "--id" => id = Some(value),
            _ => models.push(parse_model(&value).map_err(|e| format!("--model {e}"))?),
        }
    }
    let env = |name: &str| env(name).filter(|v| !v.is_empty());

    let host = host
        .or_else(|| env(HOST_ENV))
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = match (port, env(PORT_ENV)) {
        (Some(p), _) => parse_port(&p).map_err(|e| format!("--port {e}"))?,
        (None, Some(p)) => parse_port(&p).map_err(|e| format!("${PORT_ENV} {e}"))?,
        (None, None) => DEFAULT_PORT,
    };
    let models_dir = models_dir
        .or_else(|| env(MODELS_DIR_ENV))
        .unwrap_or_else(|| DEFAULT_MODELS_DIR.to_string());
    if models.is_empty() {
        let list = env(MODELS_ENV).ok_or_else(|| {
            format!("no models to serve: pass --model NAME=FILE or set {MODELS_ENV}=name=file,...")
        })?;
        models = list
            .split(',')
            .map(parse_model)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("${MODELS_ENV} {e}"))?;
    }
    models.sort();
    if let Some(pair) = models.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("model {:?} is given twice", pair[0].0));
    }
    let id = id
        .or_else(|| env(ID_ENV))
        .unwrap_or_else(|| default_id.to_string());
    if host.is_empty() || id.is_empty() {
        return Err("--host and --id must not be empty".into());
    }
    Ok(Command::Serve(Config {
        host,
        port,
        models_dir: PathBuf::from(models_dir),
        models,
        id,
    }))
}

/// `name=file`. The name becomes a URL path segment, so it is kept to a plain token.
fn parse_model(text: &str) -> Result<(String, String), String> {
    let bad = || {
        format!(
            "must be NAME=FILE with NAME made of letters, digits, '_', '-' or '.', got {text:?}"
        )
    };
    let (name, file) = text.trim().split_once('=').ok_or_else(bad)?;
    let (name, file) = (name.trim(), file.trim());
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || !name.chars().all(token) || file.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), file.to_string()))
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .map_err(|_| format!("must be a port number 0-65535, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        parse(args.iter().map(|s| s.to_string()), lookup, "rust-test")
    }

    fn serve(args: &[&str], env: &[(&str, &str)]) -> Config {
        match parse_with(args, env) {
            Ok(Command::Serve(config)) => config,
            other => panic!("{other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, f)| (n.to_string(), f.to_string()))
            .collect()
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
                id: "rust-test".into(),
            }
        );
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
        ];
        assert_eq!(
            serve(&args, &env),
            Config {
                host: "0.0.0.0".into(),
                port: 9001,
                models_dir: "/flag".into(),
                models: pairs(&[("a", "sub/a.onnx"), ("b", "b.onnx")]),
                id: "flag-id".into(),
            }
        );
    }

    #[test]
    fn errors() {
        let m = ["--model", "m=m.onnx"];
        assert!(parse_with(&["--port", "70000", m[0], m[1]], &[]).is_err());
        assert!(parse_with(&["--port"], &[]).is_err());
        assert!(parse_with(&["--bogus"], &[]).is_err());
        assert!(parse_with(&m, &[("PORT", "x")]).is_err());
        assert!(
            parse_with(&[], &[])
                .unwrap_err()
                .contains("SERVEBENCH_MODELS")
        );
        for bad in ["m", "=m.onnx", "m=", "a/b=m.onnx", "m=a.onnx,m=b.onnx"] {
            assert!(
                parse_with(&[], &[("SERVEBENCH_MODELS", bad)]).is_err(),
                "{bad}"
            );
        }
        assert!(parse_with(&["--model", "m=a", "--model", "m=b"], &[]).is_err());
        assert_eq!(parse_with(&["--help"], &[]).unwrap(), Command::Help);
    }
}
