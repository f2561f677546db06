//! Subcommands that are not the server: token tools, service install,
//! backup and restore, doctor.

pub mod backup;
pub mod daemon;
pub mod doctor;
pub mod pid;
pub mod token;
