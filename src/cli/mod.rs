//! Subcommands that are not the server: token tools, service install,
//! backup and restore, doctor, the stdio MCP bridge, the harness hooks and
//! the harness wiring (`connect`/`disconnect`).

pub mod backup;
pub mod connect;
pub mod daemon;
pub mod doctor;
pub mod endpoint;
pub mod hook;
pub mod json_layout;
pub mod mcp;
pub mod pid;
pub mod token;
pub mod transfer;
