//! WAL checkpoints off the write path.
//!
//! With `wal_autocheckpoint` on, the commit that crosses the threshold
//! copies the WAL into the database file and fsyncs it while every caller
//! of that batch waits: the writer's tail latency. Instead the writer
//! connection has auto-checkpoints off and this thread, with a connection of
//! its own, runs `PRAGMA wal_checkpoint(PASSIVE)` on a timer. PASSIVE never
//! blocks the writer or readers; it copies what it can. This connection
//! never changes the database's content, so "one writer" still holds for
//! every row. Dropping the [`Checkpointer`] stops the thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Counters of the checkpointer.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    /// Checkpoints run.
    pub runs: AtomicU64,
    /// WAL frames copied into the database file.
    pub frames: AtomicU64,
}

/// A background thread checkpointing one database.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// One PASSIVE checkpoint; returns (WAL frames, frames checkpointed).
pub fn passive(conn: &Connection) -> Result<(i64, i64), StoreError> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?)
}

impl Checkpointer {
    /// Start checkpointing `path` every `every`.
    pub fn start(
        path: &Path,
        every: Duration,
        stats: Arc<CheckpointStats>,
    ) -> Result<Self, StoreError> {
        let path: PathBuf = path.to_path_buf();
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_millis(100))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("signet-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(every);
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    match passive(&conn) {
                        Ok((_, copied)) => {
                            stats.runs.fetch_add(1, Ordering::Relaxed);
                            stats
                                .frames
                                .fetch_add(copied.max(0) as u64, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                    }
                }
            })
            .map_err(|e| StoreError::Task(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}
