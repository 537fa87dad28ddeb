//! switchyard: a git-native merge queue for parallel work on one repository.
//!
//! The library holds the whole product; `main.rs` only maps its outcome to an exit code.
//! See ARCHITECTURE.md for the map of the modules.

pub mod api;
pub mod auth;
pub mod child;
pub mod cli;
pub mod client;
pub mod command;
pub mod config;
pub mod conflicts;
pub mod daemon;
pub mod demo;
pub mod diagnostic;
pub mod git;
pub mod gitcli;
pub mod github;
pub mod mcp;
pub mod model;
pub mod ownership;
pub mod plan;
pub mod queue;
pub mod scheduler;
pub mod scope;
pub mod store;
pub mod story;
pub mod view;
pub mod worktree;
