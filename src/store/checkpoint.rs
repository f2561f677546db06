//! WAL checkpoints off the write path.
//!
//! With `wal_autocheckpoint` on, the commit that crosses the threshold
//! copies the WAL into the database file and fsyncs it while every caller
//! of that batch waits: the writer's tail latency. Instead the writer
//! connection has auto-checkpoints off and this thread, with a connection of
//! its own, runs `PRAGMA wal_checkpoint(PASSIVE)` on a timer, and sooner
//! when a look at the wal-index finds a burst (the writer nudges the
//! thread after its commits, at most every [`WATCH`]): without
//! it the WAL of a write flood after a quiet second grew to 170 MB before
//! the first checkpoint, and cutting it back stalled a commit 30–60 ms.
//! PASSIVE never blocks the writer or readers; it copies what it can. This
//! connection never changes the database's content, so "one writer" still
//! holds for every row. Dropping the [`Checkpointer`] stops the thread.
//!
//! PASSIVE alone does not bound the WAL: the writer only starts the WAL
//! over when no reader still uses it, and under steady load some read is
//! always in flight (or, under a write flood, some write), so the file
//! grows without end (6 GiB in 15 minutes of mixed load was measured;
//! 1.3 GB in 12 s of remembers). Past [`WAL_RESTART_BYTES`] of WAL content
//! the checkpointer therefore syncs the database file and catches up with
//! PASSIVE checkpoints, holding no one, and then runs a RESTART: it holds
//! new writes (never reads: readers that start meanwhile read the
//! database file) while it copies the last frames, syncs them and the
//! reads already in flight finish, at most [`RESTART_WAIT`]; the next
//! write starts the WAL over. `journal_size_limit` (128 MB, twice the
//! bound) only cuts the file back when the WAL outgrew it: the commit that
//! cuts a large WAL file back stalls for tens of milliseconds.

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
/// Each RESTART holds new writes for a few milliseconds under a write
/// flood (the last frames' copy and their sync; 2–8 ms, where it was 5–20
/// before the catch-up synced the database file first), so the bound sets
/// how often that happens: 20–25 times in 10 s of remembers at 64 MB.
pub const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;
/// Longest a RESTART checkpoint holds new writes waiting for reads (the
/// bound of [`super::busy_wait_500ms`]).
pub const RESTART_WAIT: Duration = Duration::from_millis(500);
/// Pause after a RESTART that gave up (a long read, e.g. a backup).
const RESTART_BACKOFF: Duration = Duration::from_secs(10);
/// Checkpoint interval while the WAL holds over a quarter of the bound.
const FAST_PAUSE: Duration = Duration::from_millis(100);
/// How often, at most, a writer's nudge wakes the checkpointer to look at
/// the WAL's length between checkpoints: a burst after a quiet spell is
/// caught within this, not a whole `checkpointMs` later, and an idle store
/// wakes the thread only on its timer.
const WATCH: Duration = Duration::from_millis(50);
/// Frames a RESTART may be left to copy while it holds the writer.
const CATCH_UP_FRAMES: i64 = 256;
/// Most rounds of sync and copy before a RESTART.
const CATCH_UP_ROUNDS: u32 = 4;
/// One WAL frame: a 4 KiB page and its 24-byte header.
const FRAME_BYTES: u64 = 4096 + 24;

/// The WAL file of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    beside(db, "-wal")
}

/// A file SQLite keeps next to the database: its name plus `suffix`.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// A file of the store opened only to sync it: `fdatasync` of any
/// descriptor of a file puts on disk what every writer of it left in the
/// page cache. The WAL's ([`SyncFile::wal`]): with `synchronous=NORMAL` a
/// commit leaves its frames in the page cache. The database file's
/// ([`SyncFile::database`]): a PASSIVE checkpoint that ends short of the
/// WAL's end (under writes, nearly all of them) copies pages without
/// syncing them, leaving that to the checkpoint that reaches the end. The
/// file is opened on first use and again if it was replaced (SQLite only
/// deletes the WAL when the last connection closes; the writer's stays
/// open).
pub struct SyncFile {
    path: PathBuf,
    open: Option<(std::fs::File, u64)>,
}

impl SyncFile {
    /// The WAL of the database at `db`.
    pub fn wal(db: &Path) -> SyncFile {
        SyncFile {
            path: wal_path(db),
            open: None,
        }
    }

    /// The database file at `db`.
    pub fn database(db: &Path) -> SyncFile {
        SyncFile {
            path: db.to_path_buf(),
            open: None,
        }
    }

    /// The open file, reopened if the path now names another one.
    fn file(&mut self) -> std::io::Result<&std::fs::File> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&self.path)?.ino();
        let file = match self.open.take() {
            Some((f, i)) if i == ino => f,
            _ => std::fs::File::open(&self.path)?,
        };
        Ok(&self.open.insert((file, ino)).0)
    }

    /// Put everything written to the file so far on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file()?.sync_data()
    }
}

/// The frames in the WAL now, read from the wal-index header at the start
/// of the `-shm` file (<https://www.sqlite.org/walformat.html>: `iVersion`
/// 3007000 at offset 0, `isInit` at 12, `mxFrame` at 16, native byte
/// order). Unlike the WAL file's length, which stays put when the log
/// starts over, it counts only the live frames. `None` when there is no
/// initialised index to read; a torn read only moves a checkpoint by one
/// look.
pub struct WalIndex {
    path: PathBuf,
    open: Option<std::fs::File>,
}

impl WalIndex {
    /// The wal-index of the database at `db`.
    pub fn of(db: &Path) -> WalIndex {
        WalIndex {
            path: beside(db, "-shm"),
            open: None,
        }
    }

    /// Frames in the WAL, per the index header.
    pub fn frames(&mut self) -> Option<u32> {
        use std::os::unix::fs::FileExt;
        if self.open.is_none() {
            self.open = std::fs::File::open(&self.path).ok();
        }
        let mut hdr = [0u8; 20];
        let read = self.open.as_ref()?.read_exact_at(&mut hdr, 0);
        if read.is_err() {
            // Replaced or gone (the last connection closed): reopen next time.
            self.open = None;
            return None;
        }
        let word = |at: usize| u32::from_ne_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
        (word(0) == 3_007_000 && hdr[12] == 1).then(|| word(16))
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
    /// When the next nudge may wake the thread, in milliseconds since
    /// `born` (0 at first: the first nudge always wakes it).
    next_nudge: AtomicU64,
    born: std::time::Instant,
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
                let mut index = WalIndex::of(&path);
                let mut db = SyncFile::database(&path);
                let mut last = std::time::Instant::now();
                // A failing checkpoint (disk full, read-only store) is
                // logged when it starts failing, not on every tick.
                let mut failing = false;
                while !flag.load(Ordering::Acquire) {
                    // Woken by the timer, or by a writer's nudge (which
                    // can put the timer's checkpoint off by up to another
                    // pause; the check below uses the real time since).
                    std::thread::park_timeout(pause);
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    // Between checkpoints, only a WAL past a quarter of the
                    // restart bound brings the next one forward.
                    let mut burst = || {
                        index
                            .frames()
                            .is_some_and(|f| f as u64 * FRAME_BYTES > WAL_RESTART_BYTES / 4)
                    };
                    if last.elapsed() < pause && !burst() {
                        continue;
                    }
                    last = std::time::Instant::now();
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
                    // What the writer added since that PASSIVE started (it
                    // reports the log as of its own start; the live count is
                    // in the wal-index).
                    let mut left = |frames: (i64, i64)| {
                        index
                            .frames()
                            .map_or(frames.0 - frames.1, |live| i64::from(live) - frames.1)
                    };
                    // All copied and nothing added: the writer's next commit
                    // starts the log over by itself (also the case just after
                    // a RESTART, before that commit moved the live count).
                    if left(frames) <= 0 {
                        continue;
                    }
                    // Catch up without holding anyone, then restart. First
                    // sync the database file: a PASSIVE that ends short of
                    // the log's end leaves syncing the pages it copied to
                    // the checkpoint that reaches it, the RESTART, which
                    // wrote them all out while holding the writer (a hold of
                    // 3.5 ms on a fresh store, 18 ms after 120k remembers,
                    // 100–230 ms at 1M). Then copy what the writer added
                    // meanwhile, and again, until little is left.
                    for round in 1..=CATCH_UP_ROUNDS {
                        if db.sync().is_err()
                            || left(frames) <= CATCH_UP_FRAMES
                            || round == CATCH_UP_ROUNDS
                        {
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
            next_nudge: AtomicU64::new(0),
            born: std::time::Instant::now(),
        })
    }

    /// Called by the writer after a commit: wakes the thread to look at
    /// the WAL's length, at most once per [`WATCH`] (a relaxed load and a
    /// clock read otherwise).
    pub fn nudge(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        if now >= self.next_nudge.load(Ordering::Relaxed) {
            self.next_nudge
                .store(now + WATCH.as_millis() as u64, Ordering::Relaxed);
            if let Some(h) = &self.handle {
                h.thread().unpark();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection writing the WAL by itself never checkpoints (as the
    /// store writer's).
    fn wal_writer(path: &Path) -> Connection {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (b BLOB);",
        )
        .expect("schema");
        conn
    }

    /// A WAL writer on a fresh database and a checkpointer on it whose
    /// timer (600 s) never fires within a test.
    fn watched() -> (
        tempfile::TempDir,
        Connection,
        Arc<CheckpointStats>,
        Checkpointer,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.db");
        let conn = wal_writer(&path);
        let stats = Arc::new(CheckpointStats::default());
        let checkpointer =
            Checkpointer::start(&path, Duration::from_secs(600), stats.clone()).expect("start");
        (dir, conn, stats, checkpointer)
    }

    /// Write `rows` rows of 3,000 bytes (about one WAL frame each) in one
    /// commit.
    fn burst(conn: &Connection, rows: i64) {
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO t SELECT randomblob(3000) FROM n",
            [rows],
        )
        .expect("burst");
    }

    /// Wait up to `within` for the checkpointer to have copied `frames`.
    fn copied(stats: &CheckpointStats, frames: i64, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while stats.frames.load(Ordering::Relaxed) < frames as u64 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    #[test]
    fn the_wal_index_counts_live_frames() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.db");
        let mut index = WalIndex::of(&path);
        assert_eq!(index.frames(), None, "no database, no index");
        let conn = wal_writer(&path);
        let before = index.frames().expect("an initialised index");
        burst(&conn, 500);
        let after = index.frames().expect("an initialised index");
        assert!(after >= before + 500, "{before} -> {after} frames");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("truncate");
        assert_eq!(index.frames(), Some(0), "the log started over");
    }

    #[test]
    fn a_fully_copied_wal_starts_over_with_the_next_write_without_a_restart() {
        let (dir, conn, stats, checkpointer) = watched();
        let path = dir.path().join("x.db");
        // Past the restart bound in one burst, then quiet: one PASSIVE
        // copies all of it, so no RESTART (and no hold of the writer) is
        // needed for the log to start over.
        let rows = (WAL_RESTART_BYTES / FRAME_BYTES) as i64 + 500;
        burst(&conn, rows);
        checkpointer.nudge();
        assert!(
            copied(&stats, rows, Duration::from_secs(20)),
            "not copied in 20 s"
        );
        // Looks after the copy find nothing left and restart nothing.
        checkpointer.nudge();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(stats.restarts.load(Ordering::Relaxed), 0);
        conn.execute("INSERT INTO t VALUES (randomblob(100))", [])
            .expect("write");
        let live = WalIndex::of(&path).frames().expect("index");
        assert!(live < 10, "the log did not start over: {live} frames");
    }

    #[test]
    fn the_first_nudge_right_after_start_wakes_the_checkpointer() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.db");
        let conn = wal_writer(&path);
        let rows = (WAL_RESTART_BYTES / 4 / FRAME_BYTES) as i64 + 500;
        burst(&conn, rows);
        // The WAL is already long when the checkpointer starts, and the
        // nudge comes within the first look's spacing ([`WATCH`]).
        let stats = Arc::new(CheckpointStats::default());
        let checkpointer =
            Checkpointer::start(&path, Duration::from_secs(600), stats.clone()).expect("start");
        checkpointer.nudge();
        assert!(
            copied(&stats, rows, Duration::from_secs(10)),
            "a nudge just after start was dropped: {} runs",
            stats.runs.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn a_burst_is_checkpointed_long_before_the_interval() {
        let (_dir, conn, stats, checkpointer) = watched();
        // Over a quarter of the restart bound, in one burst.
        let rows = (WAL_RESTART_BYTES / 4 / FRAME_BYTES) as i64 + 500;
        burst(&conn, rows);
        // As the store writer does after its commits.
        checkpointer.nudge();
        assert!(
            copied(&stats, rows, Duration::from_secs(10)),
            "the burst was not checkpointed within 10 s (the interval is 600 s): {} runs, {} frames",
            stats.runs.load(Ordering::Relaxed),
            stats.frames.load(Ordering::Relaxed)
        );
    }
}
