//! Shared harness of the black-box tests, defined once for every module:
//! a real daemon on a real port over a fresh temp workspace and a small
//! HTTP client (`app`), requests with tokens and headers and checks of
//! error answers (`http`), tokens signed with the workspace secret and
//! config tweaks (`auth`), the memory calls the tests make over and over
//! (`memory`), a server-sent-events client (`sse`), and the lock that lets
//! a throughput test run alone among the daemons of the process (`heavy`).

mod app;
mod auth;
mod heavy;
mod http;
mod memory;
pub mod sse;

pub use app::*;
pub use auth::*;
pub use heavy::HEAVY;
pub use http::*;
pub use memory::*;

/// An id no record has.
pub const UNKNOWN_ID: &str = "00000000-0000-4000-8000-000000000000";
