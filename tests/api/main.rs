//! The black-box tests of the daemon, in one test binary (one link, one
//! process): each module below was its own `tests/*.rs` binary before, and
//! `helpers` is their shared harness.
//!
//! Every test shares the process with the others (two at a time by
//! default), so none may set environment variables, change the working
//! directory or count process-wide resources; child processes get their
//! environment through `Command::env`.

mod helpers;

mod auth;
mod cli_connect;
mod dashboard;
mod deploy;
mod durability;
mod engine;
mod events;
mod hooks;
mod mcp;
mod memory;
mod ops;
mod pipeline;
mod safety;
mod selfhost;
mod semantic;
mod space;
mod transfer;
mod webhooks;
