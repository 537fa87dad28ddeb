//! The `switchyard` binary: gathers what the process knows, runs the CLI, exits.

use std::process::ExitCode;

use switchyard::cli::{self, Env};

fn main() -> ExitCode {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("error: cannot read the current directory: {e}");
            return ExitCode::from(cli::Exit::Failed);
        }
    };
    let env = Env { cwd };
    let exit = cli::run(
        std::env::args_os(),
        &env,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    exit.into()
}
