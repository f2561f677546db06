//! Subcommands that are not the server: token tools, service install,
//! backup and restore, doctor, the stdio MCP bridge.

pub mod backup;
pub mod daemon;
pub mod doctor;
pub mod mcp;
pub mod pid;
pub mod token;
