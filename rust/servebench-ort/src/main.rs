use std::process::ExitCode;

use servebench_ort::OrtEngine;

fn main() -> ExitCode {
    servebench_core::run("rust-ort", OrtEngine::load)
}
