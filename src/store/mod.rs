//! SQLite storage: plain synchronous code over rusqlite.
//!
//! One read-write connection exists per process and it belongs to the store
//! writer actor; everything else reads through [`ReadPool`], a small pool of
//! read-only connections that WAL lets run beside the writer. Nothing here
//! knows about actors or HTTP, so it is tested directly.

pub mod access;
pub mod checkpoint;
pub mod fts;
pub mod jobs;
pub mod lock;
pub mod maintenance;
pub mod memories;
pub mod postings;
pub mod schema;
pub mod search;
pub mod sessions;
pub mod transfer;
pub mod vec;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

pub use memories::{MemoryRecord, Scope};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite itself failed (I/O, corruption, a constraint we did not expect).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema on disk does not match this build.
    #[error("schema error: {0}")]
    Schema(String),
    /// The whole batch this write belonged to could not be committed.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A blocking task running SQLite work died.
    #[error("storage task failed: {0}")]
    Task(String),
    /// A write carried data the store refuses (e.g. a vector of the wrong
    /// dimension).
    #[error("invalid write: {0}")]
    Invalid(String),
    /// The store cannot take writes (disk full, read-only); reads go on.
    #[error("{1}")]
    Fault(Fault, String),
}

/// A condition of the storage medium rather than of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// No space left for the database or its WAL.
    DiskFull,
    /// The database file, its directory or the filesystem is read-only.
    ReadOnly,
}

impl Fault {
    /// The fault a SQLite error reports, if it is one.
    pub fn of(e: &rusqlite::Error) -> Option<Fault> {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code()? {
            ErrorCode::DiskFull => Some(Fault::DiskFull),
            ErrorCode::ReadOnly => Some(Fault::ReadOnly),
            _ => None,
        }
    }

    /// Wire name (`disk-full`, `read-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::DiskFull => "disk-full",
            Fault::ReadOnly => "read-only",
        }
    }

    /// For the gauge: 1 disk full, 2 read-only.
    pub fn code(self) -> u8 {
        match self {
            Fault::DiskFull => 1,
            Fault::ReadOnly => 2,
        }
    }

    /// Back from [`Fault::code`].
    pub fn from_code(c: u8) -> Option<Fault> {
        match c {
            1 => Some(Fault::DiskFull),
            2 => Some(Fault::ReadOnly),
            _ => None,
        }
    }
}

impl StoreError {
    /// What each op of a batch whose transaction failed with `e` gets: a
    /// medium fault keeps its kind.
    pub fn commit(e: &StoreError) -> StoreError {
        match e.fault() {
            Some(f) => StoreError::Fault(f, e.to_string()),
            None => StoreError::Commit(e.to_string()),
        }
    }

    /// The medium fault behind this error, if any.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StoreError::Fault(f, _) => Some(*f),
            StoreError::Sqlite(e) => Fault::of(e),
            _ => None,
        }
    }
}

/// Current time as an RFC 3339 UTC string with millisecond precision, the
/// format of every timestamp column (so strings compare as times).
pub fn now_iso() -> String {
    to_iso(chrono::Utc::now())
}

/// Format a UTC time the way the store does.
pub fn to_iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Register sqlite-vec as an auto extension so every connection opened
/// afterwards in this process has `vec0` and the `vec_*` functions.
pub fn register_vec_extension() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Memory statistics take a process-wide mutex on every SQLite
        // malloc; with many reader threads that lock dominated recall.
        // SAFETY: sqlite3_config before any connection exists (this Once
        // runs before every open), with the documented int argument.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite memory statistics stay on");
        }
        // SAFETY: sqlite3_vec_init has the signature sqlite3_auto_extension
        // expects (the crate's own documented registration); it is called by
        // SQLite with a valid connection handle.
        unsafe {
            #[allow(clippy::missing_transmute_annotations)]
            rusqlite::ffi::sqlite3_auto_extension(Some(std::mem::transmute(
                sqlite_vec::sqlite3_vec_init as *const (),
            )));
        }
    });
}

/// Where the database of a workspace lives.
pub fn db_path(workspace: &Path) -> PathBuf {
    workspace.join("memory").join("memories.db")
}

/// A database without auto-vacuum at most this big is converted when the
/// writer opens it (a full `VACUUM`, well under a second); a bigger one is
/// left as it is and `signet doctor` says how to convert it.
const CONVERT_AUTO_VACUUM_BYTES: i64 = 64 << 20;

/// Deleted rows give their pages back to the file system: a new database
/// is created with incremental auto-vacuum (the retention sweeper then
/// frees pages in small steps, see `maintenance::incremental_vacuum`), and
/// a small old one is converted once.
fn prepare_auto_vacuum(conn: &Connection) -> Result<(), StoreError> {
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        return Ok(());
    }
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    let bytes: i64 = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    if mode == 0 && bytes <= CONVERT_AUTO_VACUUM_BYTES {
        tracing::info!(bytes, "converting the database to incremental auto-vacuum");
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    } else if mode == 0 {
        tracing::warn!(
            bytes,
            "the database has no auto-vacuum, so deleted rows never shrink it; see `signet doctor`"
        );
    }
    Ok(())
}

/// Open the single read-write connection, apply migrations and pragmas.
pub fn open_writer(path: &Path, vector_dims: usize) -> Result<Connection, StoreError> {
    register_vec_extension();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Schema(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_handler(Some(busy_wait_5s))?;
    prepare_auto_vacuum(&conn)?;
    // Checkpoints run on the checkpointer's own connection (see
    // `checkpoint`), never inside the writer's commits.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -2000;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 134217728;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrate(&mut conn)?;
    schema::ensure_vector_table(&conn, vector_dims)?;
    Ok(conn)
}

/// SQLite's default busy handler sleeps in growing steps (up to 100 ms)
/// however soon the lock frees; between the writer and the checkpointer,
/// whose locks are held for milliseconds, that turned a 5 ms wait into a
/// 50–100 ms stall. These handlers poll every 250 µs instead, up to a
/// bound.
const BUSY_POLL: std::time::Duration = std::time::Duration::from_micros(250);

/// Busy handler of the writer and the readers: poll up to ~5 s.
pub fn busy_wait_5s(n: i32) -> bool {
    std::thread::sleep(BUSY_POLL);
    n < 20_000
}

/// Busy handler of a checkpoint that may hold writers: poll up to ~0.5 s.
pub fn busy_wait_500ms(n: i32) -> bool {
    std::thread::sleep(BUSY_POLL);
    n < 2_000
}

/// Busy handler of the background PASSIVE checkpoint: poll up to ~0.1 s.
pub fn busy_wait_100ms(n: i32) -> bool {
    std::thread::sleep(BUSY_POLL);
    n < 400
}

/// Open one read-only connection.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    register_vec_extension();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_handler(Some(busy_wait_5s))?;
    // Memory-mapped reads: FTS5 walks many leaf pages per query, and
    // reading them in place instead of copying through the page cache took
    // keyword recall from ~3,300 to ~4,500 req/s (benches/README.md). Pages
    // still in the WAL are read as before.
    // The page cache only holds what mmap cannot serve (pages whose newest
    // version is in the WAL): 2 MB each keeps the pool's heap small.
    conn.execute_batch(
        "PRAGMA cache_size = -2000; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 67108864;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A bounded pool of read-only connections used on `spawn_blocking`.
#[derive(Clone)]
pub struct ReadPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    /// A pool of at most `size` connections to `path`, opened lazily.
    pub fn new(path: &Path, size: usize) -> Self {
        ReadPool {
            inner: Arc::new(PoolInner {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Semaphore::new(size.max(1)),
            }),
        }
    }

    /// Run `f` with a read-only connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.idle.lock().map(|mut v| v.pop()) {
                Ok(Some(c)) => c,
                _ => open_reader(&inner.path)?,
            };
            let out = f(&conn);
            if let Ok(mut idle) = inner.idle.lock() {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}
/// The write generation of the store: bumped after every commit that
/// changes memories; and a second counter, bumped after every commit that
/// changes the keyword index other than by adding rows (see
/// [`postings`]).
#[derive(Debug, Default)]
pub struct Generation {
    data: std::sync::atomic::AtomicU64,
    rewrites: std::sync::atomic::AtomicU64,
}

impl Generation {
    /// The current generation.
    pub fn current(&self) -> u64 {
        self.data.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Mark that the store changed.
    pub fn bump(&self) {
        self.data.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Commits that changed or removed indexed rows so far.
    pub fn rewrites(&self) -> u64 {
        self.rewrites.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Mark that indexed rows were changed or removed (not only added).
    pub fn bump_rewrites(&self) {
        self.rewrites
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}
