//! Integration tests: the real `switchyard` binary against real repositories made in
//! temporary directories. One test binary, one module per area.

mod agents;
mod check;
mod daemon;
mod dashboard;
mod demo;
mod elsewhere;
mod fakegh;
mod faults;
mod github;
mod hostile;
mod init;
mod lanes;
mod mcp;
mod owners;
mod queue;
mod reads;
mod remote;
mod roles;
mod supervisor;
mod support;
