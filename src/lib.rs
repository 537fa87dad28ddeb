//! switchyard: a git-native merge queue for parallel work on one repository.
//!
//! The library holds the whole product; `main.rs` only maps its outcome to an exit code.
//! See ARCHITECTURE.md for the map of the modules.

pub mod cli;
pub mod config;
pub mod diagnostic;
pub mod git;
pub mod model;
pub mod ownership;
pub mod scheduler;
pub mod store;
