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
//!
//! PASSIVE alone does not bound the WAL: the writer only starts the WAL
//! over when no reader still uses it, and under steady load some read is
//! always in flight, so the file grows without end (6 GiB in 15 minutes
//! was measured). Past [`WAL_RESTART_BYTES`] the checkpointer therefore
//! runs a TRUNCATE checkpoint: it holds new writes (never reads: readers
//! that start meanwhile read the database file) while the reads already in
//! flight finish, at most [`RESTART_WAIT`], then empties the WAL.

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
    /// TRUNCATE checkpoints that emptied the WAL.
    pub truncations: AtomicU64,
    /// TRUNCATE checkpoints that gave up on a read still in flight.
    pub truncations_busy: AtomicU64,
}

/// WAL size past which the WAL is emptied (TRUNCATE checkpoint).
pub const WAL_RESTART_BYTES: u64 = 16 * 1024 * 1024;
/// Longest a TRUNCATE checkpoint holds new writes waiting for reads.
pub const RESTART_WAIT: Duration = Duration::from_millis(500);
/// Pause after a TRUNCATE that gave up (a long read, e.g. a backup).
const RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// The WAL file of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// One TRUNCATE checkpoint, waiting at most `wait` for reads in flight;
/// true when the WAL was emptied.
pub fn truncate(conn: &Connection, wait: Duration) -> Result<bool, StoreError> {
    conn.busy_timeout(wait)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    conn.busy_timeout(Duration::from_millis(100))?;
    Ok(busy? == 0)
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
        let wal = wal_path(&path);
        let handle = std::thread::Builder::new()
            .name("signet-checkpoint".into())
            .spawn(move || {
                let mut next_truncate = std::time::Instant::now();
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
                    let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_RESTART_BYTES);
                    if large && std::time::Instant::now() >= next_truncate {
                        match truncate(&conn, RESTART_WAIT) {
                            Ok(true) => {
                                stats.truncations.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(false) => {
                                stats.truncations_busy.fetch_add(1, Ordering::Relaxed);
                                next_truncate = std::time::Instant::now() + RESTART_BACKOFF;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "WAL truncation failed");
                                next_truncate = std::time::Instant::now() + RESTART_BACKOFF;
                            }
                        }
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
