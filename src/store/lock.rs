//! One daemon per workspace: an exclusive `flock` on `.daemon/lock`, taken
//! before the store opens and held for the daemon's life.
//!
//! Two writers on one database both acknowledge writes and trip over each
//! other's locks ("database is locked"); the second `serve` must stop at
//! once instead. The kernel drops the lock when the process dies, so a
//! `kill -9` leaves nothing to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the workspace could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another signet daemon{} is already serving the workspace {}; stop it first, or set SIGNET_PATH to another workspace",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        workspace.display()
    )]
    Held {
        holder: Option<u32>,
        workspace: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases the workspace.
#[derive(Debug)]
pub struct WorkspaceLock {
    _file: File,
}

impl WorkspaceLock {
    /// Lock the workspace whose daemon directory is `daemon_dir`, and record
    /// this process's pid in the lock file.
    pub fn acquire(workspace: &Path, daemon_dir: &Path) -> Result<WorkspaceLock, LockError> {
        let path = daemon_dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(daemon_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    holder: text.trim().parse().ok(),
                    workspace: workspace.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(io)?;
        Ok(WorkspaceLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let daemon = dir.path().join(".daemon");
        let first = WorkspaceLock::acquire(dir.path(), &daemon).expect("first");
        match WorkspaceLock::acquire(dir.path(), &daemon) {
            Err(LockError::Held { holder, workspace }) => {
                assert_eq!(holder, Some(std::process::id()));
                assert_eq!(workspace, dir.path());
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        WorkspaceLock::acquire(dir.path(), &daemon).expect("free again");
    }
}
