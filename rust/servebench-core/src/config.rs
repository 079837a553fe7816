//! Command line and environment, the same for both server binaries.

use std::path::PathBuf;

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_MODELS_DIR: &str = "outputs/models";
pub const MODELS_DIR_ENV: &str = "SERVEBENCH_MODELS_DIR";
pub const PORT_ENV: &str = "PORT";
pub const HOST_ENV: &str = "SERVEBENCH_HOST";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub models_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve(Config),
    Help,
}

pub fn usage(program: &str) -> String {
    format!(
        "usage: {program} [--host HOST] [--port PORT] [--models-dir DIR]\n\
         \n\
         --host HOST       address to bind (default ${HOST_ENV}, else {DEFAULT_HOST})\n\
         --port PORT       port to bind (default ${PORT_ENV}, else {DEFAULT_PORT})\n\
         --models-dir DIR  directory with preprocess.json, pytorch.onnx and lightgbm.onnx\n\
         \x20                 (default ${MODELS_DIR_ENV}, else {DEFAULT_MODELS_DIR})\n"
    )
}

/// Flags win over the environment, the environment over the defaults. `args` excludes the
/// program name; `env` looks a variable up.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let mut host = None;
    let mut port = None;
    let mut models_dir = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--host" => &mut host,
            "--port" => &mut port,
            "--models-dir" => &mut models_dir,
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value")),
        };
        *slot = Some(value);
    }

    let host = host
        .or_else(|| env(HOST_ENV).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    if host.is_empty() {
        return Err("--host must not be empty".into());
    }
    let port = match port {
        Some(p) => parse_port(&p).map_err(|e| format!("--port {e}"))?,
        None => match env(PORT_ENV).filter(|p| !p.is_empty()) {
            Some(p) => parse_port(&p).map_err(|e| format!("${PORT_ENV} {e}"))?,
            None => DEFAULT_PORT,
        },
    };
    let models_dir = models_dir
        .or_else(|| env(MODELS_DIR_ENV).filter(|d| !d.is_empty()))
        .unwrap_or_else(|| DEFAULT_MODELS_DIR.to_string());
    Ok(Command::Serve(Config {
        host,
        port,
        models_dir: PathBuf::from(models_dir),
    }))
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
        parse(args.iter().map(|s| s.to_string()), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults() {
        assert_eq!(
            parse_with(&[], &[]).unwrap(),
            Command::Serve(Config {
                host: "127.0.0.1".into(),
                port: 8000,
                models_dir: "outputs/models".into(),
            })
        );
    }

    #[test]
    fn flags_beat_environment() {
        let env = [
            ("PORT", "9000"),
            ("SERVEBENCH_MODELS_DIR", "/env/models"),
            ("SERVEBENCH_HOST", "::1"),
        ];
        assert_eq!(
            parse_with(&[], &env).unwrap(),
            Command::Serve(Config {
                host: "::1".into(),
                port: 9000,
                models_dir: "/env/models".into(),
            })
        );
        assert_eq!(
            parse_with(
                &["--port", "9001", "--models-dir=/flag", "--host", "0.0.0.0"],
                &env
            )
            .unwrap(),
            Command::Serve(Config {
                host: "0.0.0.0".into(),
                port: 9001,
                models_dir: "/flag".into(),
            })
        );
    }

    #[test]
    fn errors() {
        assert!(parse_with(&["--port", "70000"], &[]).is_err());
        assert!(parse_with(&["--port"], &[]).is_err());
        assert!(parse_with(&["--bogus"], &[]).is_err());
        assert!(parse_with(&[], &[("PORT", "x")]).is_err());
        assert_eq!(parse_with(&["--help"], &[]).unwrap(), Command::Help);
    }
}
