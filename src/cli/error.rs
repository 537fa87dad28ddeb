//! The one place that decides what a failure means for the user: its exit status and
//! how it is printed (one line each, on stderr).

use std::io::Write;
use std::process::ExitCode;

use crate::api::ErrorCode;
use crate::client::ClientError;
use crate::config::LoadError;
use crate::diagnostic::Diagnostic;
use crate::git::GitError;

/// Exit statuses, as SPEC.md fixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The operation was refused or failed; the message says why.
    Failed = 1,
    /// Bad usage or bad config.
    Usage = 2,
    /// A wait ran out of time (`switchyard wait`, `submit --wait`).
    TimedOut = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug)]
pub enum CliError {
    /// Bad usage or bad input (exit 2).
    Usage(String),
    /// Config problems, each located (exit 2).
    Config(Vec<Diagnostic>),
    /// Refused or failed (exit 1).
    Failed(String),
    /// The daemon refused, with its code (exit 2 for bad input, else 1).
    Api { code: ErrorCode, message: String },
    /// No daemon runs for the repository (exit 1).
    NoDaemon(String),
    /// The daemon did not answer in time (exit 1).
    TimedOut(String),
    /// Already reported on stdout (for example as JSON); only the status is left.
    Reported(Exit),
    /// Something that should not happen (exit 1).
    Bug(String),
}

impl CliError {
    pub fn output(e: std::io::Error) -> CliError {
        CliError::Failed(format!("cannot write output: {e}"))
    }

    /// The code a program branches on (`{"error": {"code"}}` with `--json`): the
    /// daemon's, or one of the client's own (`usage`, `bad_config`, `no_daemon`,
    /// `timeout`, `failed`, `internal`).
    pub fn code(&self) -> String {
        match self {
            CliError::Api { code, .. } => serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "refused".to_owned()),
            CliError::Usage(_) => "usage".to_owned(),
            CliError::Config(_) => "bad_config".to_owned(),
            CliError::NoDaemon(_) => "no_daemon".to_owned(),
            CliError::TimedOut(_) => "timeout".to_owned(),
            CliError::Failed(_) | CliError::Reported(_) => "failed".to_owned(),
            CliError::Bug(_) => "internal".to_owned(),
        }
    }

    /// Prints the error and returns its exit status: one line per problem on stderr,
    /// or, with `--json`, one line `{"error": {"code", "message"}}`.
    pub fn report(self, err: &mut dyn Write, json: bool) -> Exit {
        let code = self.code();
        let (exit, lines) = match self {
            // A message of several lines (a plan's problems, one per line) keeps each
            // problem on a line of its own.
            CliError::Usage(m) => (Exit::Usage, m.lines().map(str::to_owned).collect()),
            CliError::Api {
                code: ErrorCode::BadRequest | ErrorCode::TooLarge,
                message,
            } => (Exit::Usage, message.lines().map(str::to_owned).collect()),
            CliError::Config(diags) => (Exit::Usage, diags.iter().map(|d| d.to_string()).collect()),
            CliError::Failed(m)
            | CliError::Api { message: m, .. }
            | CliError::NoDaemon(m)
            | CliError::TimedOut(m) => (Exit::Failed, vec![m]),
            CliError::Reported(exit) => return exit,
            CliError::Bug(m) => (Exit::Failed, vec![format!("internal: {m}")]),
        };
        if json {
            let body = serde_json::json!({"error": {"code": code, "message": lines.join("\n")}});
            let _ = writeln!(err, "{body}");
            return exit;
        }
        let prefix = match code.as_str() {
            // Config diagnostics carry their own place.
            "bad_config" => "",
            _ => "error: ",
        };
        for line in lines {
            let _ = writeln!(err, "{prefix}{line}");
        }
        exit
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> CliError {
        match e {
            LoadError::Invalid(diags) => CliError::Config(diags),
            e @ (LoadError::Missing { .. } | LoadError::Io { .. }) => {
                CliError::Usage(e.to_string())
            }
        }
    }
}

impl From<GitError> for CliError {
    fn from(e: GitError) -> CliError {
        match e {
            GitError::NotARepository(_) | GitError::Bare(_) => CliError::Usage(e.to_string()),
            GitError::Git(_) => CliError::Failed(e.to_string()),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        match e {
            ClientError::Api { code, message } => CliError::Api { code, message },
            e @ (ClientError::NoDaemon(_) | ClientError::Unreachable(_)) => {
                CliError::NoDaemon(e.to_string())
            }
            e @ ClientError::TimedOut(_) => CliError::TimedOut(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}
