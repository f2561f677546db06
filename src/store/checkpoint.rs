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
//! always in flight (or, under a write flood, some write), so the file
//! grows without end (6 GiB in 15 minutes of mixed load was measured;
//! 1.3 GB in 12 s of remembers). Past [`WAL_RESTART_BYTES`] of WAL content
//! the checkpointer therefore catches up with PASSIVE checkpoints and then
//! runs a RESTART: it holds new writes (never reads: readers that start
//! meanwhile read the database file) while it copies the last frames and
//! the reads already in flight finish, at most [`RESTART_WAIT`]; the next
//! write starts the WAL over and `journal_size_limit` (64 MB) cuts the file
//! back.

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
    /// RESTART checkpoints that started the WAL over.
    pub restarts: AtomicU64,
    /// RESTART checkpoints that gave up on a read still in flight.
    pub restarts_busy: AtomicU64,
}

/// WAL content past which the WAL is started over (RESTART checkpoint).
pub const WAL_RESTART_BYTES: u64 = 32 * 1024 * 1024;
/// Longest a RESTART checkpoint holds new writes waiting for reads (the
/// bound of [`super::busy_wait_500ms`]).
pub const RESTART_WAIT: Duration = Duration::from_millis(500);
/// Pause after a RESTART that gave up (a long read, e.g. a backup).
const RESTART_BACKOFF: Duration = Duration::from_secs(10);
/// Checkpoint interval while the WAL holds over a quarter of the bound.
const FAST_PAUSE: Duration = Duration::from_millis(100);
/// Frames a RESTART may be left to copy while it holds the writer.
const CATCH_UP_FRAMES: i64 = 1024;
/// One WAL frame: a 4 KiB page and its 24-byte header.
const FRAME_BYTES: u64 = 4096 + 24;

/// The WAL file of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// The WAL file of a database, opened to sync it: with
/// `synchronous=NORMAL` a commit leaves its frames in the page cache, and
/// `fdatasync` of the file (any descriptor of it) puts them on disk. The
/// file is opened on the first sync and again if it was replaced (SQLite
/// only deletes it when the last connection closes; the writer's stays
/// open).
pub struct WalFile {
    path: PathBuf,
    open: Option<(std::fs::File, u64)>,
}

impl WalFile {
    /// The WAL of the database at `db`.
    pub fn of(db: &Path) -> WalFile {
        WalFile {
            path: wal_path(db),
            open: None,
        }
    }

    /// Put every frame written so far on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&self.path)?.ino();
        let file = match self.open.take() {
            Some((f, i)) if i == ino => f,
            _ => std::fs::File::open(&self.path)?,
        };
        let res = file.sync_data();
        self.open = Some((file, ino));
        res
    }
}

/// One RESTART checkpoint, waiting at most [`RESTART_WAIT`] for the writer
/// and for reads in flight; true when the next write starts the WAL over
/// (its file is cut back to `journal_size_limit` then).
pub fn restart(conn: &Connection) -> Result<bool, StoreError> {
    conn.busy_handler(Some(super::busy_wait_500ms))?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
    conn.busy_handler(Some(super::busy_wait_100ms))?;
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
        conn.busy_handler(Some(super::busy_wait_100ms))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("signet-checkpoint".into())
            .spawn(move || {
                let mut next_restart = std::time::Instant::now();
                let mut pause = every;
                // A failing checkpoint (disk full, read-only store) is
                // logged when it starts failing, not on every tick.
                let mut failing = false;
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(pause);
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let mut frames = match passive(&conn) {
                        Ok((log, copied)) => {
                            if std::mem::take(&mut failing) {
                                tracing::info!("WAL checkpoints work again");
                            }
                            stats.runs.fetch_add(1, Ordering::Relaxed);
                            stats
                                .frames
                                .fetch_add(copied.max(0) as u64, Ordering::Relaxed);
                            (log, copied)
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(error = %e, "WAL checkpoint failed");
                            }
                            pause = every;
                            continue;
                        }
                    };
                    // A WAL that grows fast is checkpointed more often, so
                    // each restart has little left to copy.
                    let wal_bytes = |log: i64| log.max(0) as u64 * FRAME_BYTES;
                    pause = if wal_bytes(frames.0) > WAL_RESTART_BYTES / 4 {
                        FAST_PAUSE.min(every)
                    } else {
                        every
                    };
                    if wal_bytes(frames.0) <= WAL_RESTART_BYTES
                        || std::time::Instant::now() < next_restart
                    {
                        continue;
                    }
                    // Catch up without holding anyone, then restart.
                    for _ in 0..3 {
                        if frames.0 - frames.1 <= CATCH_UP_FRAMES {
                            break;
                        }
                        match passive(&conn) {
                            Ok(f) => frames = f,
                            Err(_) => break,
                        }
                    }
                    match restart(&conn) {
                        Ok(true) => {
                            stats.restarts.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            stats.restarts_busy.fetch_add(1, Ordering::Relaxed);
                            next_restart = std::time::Instant::now() + RESTART_BACKOFF;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL restart failed");
                            next_restart = std::time::Instant::now() + RESTART_BACKOFF;
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
