use std::process::ExitCode;

use servebench_tract::TractEngine;

fn main() -> ExitCode {
    servebench_core::run("rust-tract", TractEngine::load)
}
