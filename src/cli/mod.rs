//! Subcommands that are not the server: token tools, service install,
//! backup and restore, doctor, the stdio MCP bridge, the harness hooks.

pub mod backup;
pub mod daemon;
pub mod doctor;
pub mod endpoint;
pub mod hook;
pub mod mcp;
pub mod pid;
pub mod token;
