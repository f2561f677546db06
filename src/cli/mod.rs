//! Subcommands that are not the server.

pub mod token;
