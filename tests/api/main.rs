//! The black-box tests of the daemon, in one test binary (one link, one
//! process): each module below was its own `tests/*.rs` binary before, and
//! `helpers` is their shared harness.

mod helpers;

mod auth;
mod deploy;
mod durability;
mod engine;
mod events;
mod memory;
mod ops;
mod pipeline;
mod safety;
mod selfhost;
mod semantic;
mod webhooks;
