//! signet-rs: a self-hostable memory server for AI agents.
//!
//! The map of the system (each module imports only those listed after it;
//! see `docs/architecture.md`):
//! - [`cli`] — subcommands that are not the server (tokens, service
//!   install, backup, doctor, the stdio MCP bridge, harness hooks and
//!   `connect`, export and import; an import with no daemon running runs
//!   on an [`app::Engine`] of its own).
//! - [`app`] — builds everything and runs the ordered shutdown.
//! - [`http`] — the warp front: edge guard, authenticate, parse, call one
//!   domain operation, render; also serves the web dashboard's embedded
//!   files (`dashboard/`, see `http::dashboard`).
//! - [`mcp`] — the MCP front: the memory tools served at `/mcp`.
//! - [`pipeline`] — the extraction pipeline: a background front (an actor
//!   under the supervisor) that embeds and extracts through the domain.
//! - [`webhooks`] — delivery of events to configured receivers.
//! - [`memory`] — the domain layer, the only door: every operation (memory
//!   records, tokens, repair, diagnostics, metrics figures, analytics,
//!   harness hooks and sessions)
//!   admits its verified caller (permission, scope, rate limits, kill
//!   switch) and applies the mutation rules.
//! - [`actors`] — the supervisor and its children; the store writer is the
//!   only SQLite writer and commits in groups.
//! - [`extract`] — LLM extraction: prompts, providers, decision parsing.
//! - [`embed`] — embedding providers (native MiniLM, ollama, OpenAI-style).
//! - [`auth`] — tokens, roles and permissions, secret, revocations, ledger.
//! - [`diagnostics`], [`telemetry`], [`logbuf`] — health scores, request
//!   figures, the in-memory log.
//! - [`config`] — typed settings from `agent.yaml` and `SIGNET_*`.
//! - [`clock`], [`net`] — the daemon's "now"; origin and host parsing.
//! - [`store`] — plain synchronous SQLite code: migrations, records,
//!   search, the read pool, bulk export/import and the Signet reader.

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
