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
    /// Already reported on stdout (for example as JSON); only the status is left.
    Reported(Exit),
    /// Something that should not happen (exit 1).
    Bug(String),
}

impl CliError {
    pub fn output(e: std::io::Error) -> CliError {
        CliError::Failed(format!("cannot write output: {e}"))
    }

    /// Prints the error and returns its exit status.
    pub fn report(self, err: &mut dyn Write) -> Exit {
        let (exit, lines) = match self {
            // A message of several lines (a plan's problems, one per line) keeps each
            // problem on a line of its own.
            CliError::Usage(m) => (
                Exit::Usage,
                m.lines().map(|l| format!("error: {l}")).collect(),
            ),
            CliError::Config(diags) => (Exit::Usage, diags.iter().map(|d| d.to_string()).collect()),
            CliError::Failed(m) => (Exit::Failed, vec![format!("error: {m}")]),
            CliError::Reported(exit) => (exit, vec![]),
            CliError::Bug(m) => (Exit::Failed, vec![format!("error: internal: {m}")]),
        };
        for line in lines {
            let _ = writeln!(err, "{line}");
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
            ClientError::Api {
                code: ErrorCode::BadRequest | ErrorCode::TooLarge,
                message,
            } => CliError::Usage(message),
            other => CliError::Failed(other.to_string()),
        }
    }
}
