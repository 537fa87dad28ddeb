//! The `switchyard` binary: gathers what the process knows, runs the CLI, exits.

use std::process::ExitCode;

use switchyard::cli::{self, Env};

fn main() -> ExitCode {
    // The daemon runs every verify and setup command under a supervisor of its own, this
    // same executable; it is no command of the CLI.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .get(1)
        .is_some_and(|a| a == switchyard::command::SUPERVISE)
    {
        match switchyard::command::supervise(&argv[2..]) {
            Ok(done) => {
                if done.stopped > 0 {
                    eprintln!(
                        "[switchyard: stopped {} process(es) the command left running]",
                        done.stopped
                    );
                }
                done.exit()
            }
            Err(e) => {
                eprintln!("{}{e}", switchyard::command::SUPERVISOR_ERROR);
                std::process::exit(switchyard::command::SUPERVISOR_FAILED);
            }
        }
    }
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("error: cannot read the current directory: {e}");
            return ExitCode::from(cli::Exit::Failed);
        }
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let env = Env {
        cwd,
        agent: var("SWITCHYARD_AGENT"),
        user: var("USER").or_else(|| var("LOGNAME")).or_else(login_name),
        log_filter: var("SWITCHYARD_LOG"),
        // The client's token is the client's alone: never in what the daemon passes on.
        vars: std::env::vars()
            .filter(|(k, _)| k != switchyard::auth::TOKEN_ENV)
            .collect(),
        daemon: var("SWITCHYARD_DAEMON"),
        token: var(switchyard::auth::TOKEN_ENV).map(switchyard::auth::Token::new),
        ca_cert: var("SWITCHYARD_CA_CERT").map(std::path::PathBuf::from),
        temp_dir: std::env::temp_dir(),
        abort_after_steps: var("SWITCHYARD_TEST_ABORT_AFTER_STEPS").and_then(|v| v.parse().ok()),
        queue_tick: var("SWITCHYARD_TEST_QUEUE_TICK")
            .and_then(|v| switchyard::config::parse_duration(&v).ok()),
        exe: std::env::current_exe().ok(),
        timeout: match var("SWITCHYARD_TIMEOUT") {
            None => None,
            Some(text) => match switchyard::config::parse_duration(&text) {
                Ok(d) if d.is_zero() => {
                    eprintln!("error: SWITCHYARD_TIMEOUT must be longer than zero");
                    return ExitCode::from(cli::Exit::Usage);
                }
                Ok(d) => Some(d),
                Err(e) => {
                    eprintln!("error: SWITCHYARD_TIMEOUT: {e}");
                    return ExitCode::from(cli::Exit::Usage);
                }
            },
        },
    };
    // Unlocked handles: the daemon's threads log to stderr while the command runs.
    let exit = cli::run(
        std::env::args_os(),
        &env,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    exit.into()
}

/// The login name of the current user, from the password database.
fn login_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; it is read at once,
    // before any other call could overwrite it, and this program is single-threaded here.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_str()
            .ok()
            .map(str::to_owned)
    }
}
