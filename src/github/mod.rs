//! GitHub: a pull request per submitted task with the task's card as its body, the
//! queue's state as the `switchyard` check run, decisions read back from reviews and
//! comment commands, and CI checks as a verifier. The daemon (`daemon::github`) drives
//! these; everything here is either the HTTP client or a pure function of ledger state.

pub mod card;
pub mod checks;
pub mod client;
pub mod command;
pub mod webhook;

pub use client::{Client, Error, Retry};

/// The check run switchyard keeps on every PR head.
pub const CHECK_NAME: &str = "switchyard";

/// The branch a rebased commit is pushed to for `verify = "github-checks"`.
pub fn verify_branch(task: crate::model::TaskId) -> String {
    format!("switchyard/verify/{task}")
}
