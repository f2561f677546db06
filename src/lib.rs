//! signet-rs: a self-hostable memory server for AI agents.
//!
//! The map of the system:
//! - [`config`] — typed settings from `agent.yaml` and `SIGNET_*`.
//! - [`app`] — builds everything and runs the ordered shutdown.
//! - [`http`] — warp routes: authenticate, check permission, call one
//!   memory operation, render JSON.
//! - [`memory`] — the operations every front calls (remember, recall,
//!   modify, forget, recover, batches), given a verified caller.
//! - [`actors`] — the supervisor and its children; the store writer is the
//!   only SQLite writer and commits in groups.
//! - [`store`] — plain synchronous SQLite code: migrations, records,
//!   search, the read pool.

pub mod actors;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod diagnostics;
pub mod embed;
pub mod extract;
pub mod http;
pub mod logbuf;
pub mod mcp;
pub mod memory;
pub mod net;
pub mod pipeline;
pub mod store;
pub mod telemetry;
pub mod webhooks;
