//! Retention and repair, as plain SQL steps. The store writer runs each
//! step in its own transaction (retention in batches), so maintenance never
//! holds the write lock long and never bypasses the one writer.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::memories::{write_history, Audit, RECORD_COLUMNS};
use super::{to_iso, StoreError};

/// One retention step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SweepStep {
    /// Tombstones past the recover window: archived, then hard-deleted
    /// with their vectors.
    Tombstones,
    History,
    CompletedJobs,
    DeadJobs,
}

/// Give up to `pages` free pages back to the file system (incremental
/// auto-vacuum); returns `(freed, left)`. Frees nothing on a database
/// without auto-vacuum.
pub fn incremental_vacuum(conn: &Connection, pages: i64) -> Result<(i64, i64), StoreError> {
    let free = |c: &Connection| c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0));
    let before = free(conn)?;
    if before > 0 {
        conn.execute_batch(&format!("PRAGMA incremental_vacuum({})", pages.max(1)))?;
    }
    let left = free(conn)?;
    Ok(((before - left).max(0), left))
}

/// Where archived tombstones go: `archive/` beside the database file.
pub fn archive_dir(conn: &Connection) -> Result<std::path::PathBuf, StoreError> {
    let db = conn
        .path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| StoreError::Invalid("an in-memory database has no archive".into()))?;
    Ok(std::path::Path::new(db)
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .join("archive"))
}

/// Cutoff timestamp `days` before `now` (Unix seconds).
pub fn cutoff(now: i64, days: i64) -> String {
    to_iso(chrono::DateTime::from_timestamp(now - days * 86_400, 0).unwrap_or_default())
}

/// Run one batch of a step; returns the rows removed (a short batch means
/// the step is done).
pub fn sweep_batch(
    conn: &Connection,
    step: SweepStep,
    cutoff: &str,
    batch: i64,
    at: &str,
) -> Result<usize, StoreError> {
    Ok(match step {
        SweepStep::Tombstones => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT rowid, {RECORD_COLUMNS} FROM memories
                 WHERE is_deleted = 1 AND deleted_at < ?1 ORDER BY deleted_at LIMIT ?2"
            ))?;
            let rows: Vec<(i64, super::MemoryRecord)> = stmt
                .query_map(params![cutoff, batch], |r| {
                    let rowid: i64 = r.get(0)?;
                    // Columns after rowid, in RECORD_COLUMNS order.
                    let rec = super::MemoryRecord {
                        id: r.get(1)?,
                        content: r.get(2)?,
                        kind: r.get(3)?,
                        importance: r.get(4)?,
                        tags: r.get(5)?,
                        pinned: r.get::<_, i64>(6)? != 0,
                        who: r.get(7)?,
                        project: r.get(8)?,
                        agent: r.get(9)?,
                        user: r.get(10)?,
                        source_type: r.get(11)?,
                        source_id: r.get(12)?,
                        content_hash: r.get(13)?,
                        version: r.get(14)?,
                        is_deleted: r.get::<_, i64>(15)? != 0,
                        deleted_at: r.get(16)?,
                        access_count: r.get(17)?,
                        last_accessed: r.get(18)?,
                        created_at: r.get(19)?,
                        updated_at: r.get(20)?,
                        updated_by: r.get(21)?,
                        embedding_model: r.get(22)?,
                        extraction_status: r.get(23)?,
                    };
                    Ok((rowid, rec))
                })?
                .collect::<Result<_, _>>()?;
            if rows.is_empty() {
                return Ok(0);
            }
            // Cold storage outside the database, so purging gives the
            // space back: the records (with their history) as export lines,
            // appended to this month's gzip file and synced before the rows
            // go. A crash between the two archives a record twice, which an
            // import of the file skips by id.
            let mut lines = Vec::with_capacity(rows.len());
            for (_, rec) in &rows {
                let history = super::memories::history(conn, &rec.id, i64::MAX)?;
                lines.push(super::transfer::archive_line(rec.clone(), history, at)?);
            }
            super::transfer::append_archive(&archive_dir(conn)?, at, &lines)?;
            for (rowid, rec) in &rows {
                super::vec::remove(conn, *rowid)?;
                conn.prepare_cached("DELETE FROM memory_jobs WHERE memory_id = ?1")?.execute([&rec.id])?;
                conn.prepare_cached("DELETE FROM memory_feedback WHERE memory_id = ?1")?
                    .execute([&rec.id])?;
                conn.prepare_cached("DELETE FROM memories WHERE rowid = ?1")?.execute([rowid])?;
            }
            rows.len()
        }
        SweepStep::History => conn
            .prepare_cached(
                "DELETE FROM memory_history WHERE rowid IN
                   (SELECT rowid FROM memory_history WHERE created_at < ?1 ORDER BY rowid LIMIT ?2)",
            )?
            .execute(params![cutoff, batch])?,
        SweepStep::CompletedJobs => conn
            .prepare_cached(
                "DELETE FROM memory_jobs WHERE rowid IN
                   (SELECT rowid FROM memory_jobs WHERE status = 'completed' AND updated_at < ?1 LIMIT ?2)",
            )?
            .execute(params![cutoff, batch])?,
        SweepStep::DeadJobs => conn
            .prepare_cached(
                "DELETE FROM memory_jobs WHERE rowid IN
                   (SELECT rowid FROM memory_jobs WHERE status = 'dead' AND updated_at < ?1 LIMIT ?2)",
            )?
            .execute(params![cutoff, batch])?,
    })
}

/// A repair action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairAction {
    RequeueDeadJobs,
    ReleaseLeases,
    CheckFts {
        repair: bool,
    },
    ReEmbed {
        batch: i64,
        dry_run: bool,
    },
    CleanOrphans,
    Deduplicate {
        dry_run: bool,
    },
    /// Record a finished retention sweep (its audit row).
    SweepAudit {
        tombstones: usize,
        history: usize,
        completed_jobs: usize,
        dead_jobs: usize,
    },
}

impl RepairAction {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            RepairAction::RequeueDeadJobs => "requeue-dead-jobs",
            RepairAction::ReleaseLeases => "release-leases",
            RepairAction::CheckFts { .. } => "check-fts",
            RepairAction::ReEmbed { .. } => "re-embed",
            RepairAction::CleanOrphans => "clean-orphans",
            RepairAction::Deduplicate { .. } => "deduplicate",
            RepairAction::SweepAudit { .. } => "retention-sweep",
        }
    }
}

/// What a repair did, as the API answers it.
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    pub action: &'static str,
    pub success: bool,
    pub affected: i64,
    pub message: String,
    /// Records soft-deleted by the repair (for events); not serialised.
    #[serde(skip)]
    pub deleted: Vec<super::MemoryRecord>,
}

fn count(conn: &Connection, sql: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

/// Run a repair and write its audit row.
pub fn repair(
    conn: &Connection,
    action: RepairAction,
    audit: &Audit,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<RepairOutcome, StoreError> {
    let now = to_iso(at);
    let mut deleted = Vec::new();
    let (affected, message): (i64, String) = match action {
        RepairAction::RequeueDeadJobs => {
            // One job per (memory, kind) may be active: requeue the newest
            // dead one of each, and none where an active job exists.
            let n = conn.execute(
                "UPDATE memory_jobs SET status = 'pending', attempts = 0, error = NULL, leased_at = NULL,
                    run_after = NULL, updated_at = ?1
                 WHERE status = 'dead'
                   AND rowid = (SELECT MAX(d.rowid) FROM memory_jobs d
                                WHERE d.memory_id = memory_jobs.memory_id AND d.kind = memory_jobs.kind
                                  AND d.status = 'dead')
                   AND NOT EXISTS (SELECT 1 FROM memory_jobs a
                                   WHERE a.memory_id = memory_jobs.memory_id AND a.kind = memory_jobs.kind
                                     AND a.status IN ('pending', 'leased'))",
                [&now],
            )?;
            (n as i64, format!("{n} dead jobs back in the queue"))
        }
        RepairAction::ReleaseLeases => {
            let n = super::jobs::release_all(conn, at)?;
            (n as i64, format!("{n} leased jobs released"))
        }
        RepairAction::CheckFts { repair } => {
            let live = count(conn, "SELECT COUNT(*) FROM memories WHERE is_deleted = 0")?;
            let fts = count(conn, "SELECT COUNT(*) FROM memories_fts_docsize")?;
            let missing = count(
                conn,
                "SELECT COUNT(*) FROM memories m WHERE m.is_deleted = 0
                   AND NOT EXISTS (SELECT 1 FROM memories_fts_docsize d WHERE d.id = m.rowid)",
            )?;
            let extra = count(
                conn,
                "SELECT COUNT(*) FROM memories_fts_docsize d
                   WHERE NOT EXISTS (SELECT 1 FROM memories m WHERE m.rowid = d.id AND m.is_deleted = 0)",
            )?;
            let mismatched = missing + extra;
            if repair && mismatched > 0 {
                // Rebuild from live rows only (FTS5's own 'rebuild' would
                // index tombstones too).
                conn.execute_batch(
                    "INSERT INTO memories_fts(memories_fts) VALUES ('delete-all');",
                )?;
                conn.execute(
                    "INSERT INTO memories_fts(rowid, content, who) SELECT rowid, content, who FROM memories WHERE is_deleted = 0",
                    [],
                )?;
                (mismatched, format!("keyword index rebuilt: {missing} missing and {extra} stale rows fixed ({live} live)"))
            } else {
                (mismatched, format!("{fts} keyword rows for {live} live memories: {missing} missing, {extra} stale"))
            }
        }
        RepairAction::ReEmbed { batch, dry_run } => {
            let gaps = count(
                conn,
                "SELECT COUNT(*) FROM memories WHERE is_deleted = 0 AND embedding_model IS NULL",
            )?;
            let unqueued = count(
                conn,
                &format!("SELECT COUNT(*) FROM memories m WHERE {UNQUEUED_GAP}"),
            )?;
            if dry_run {
                (
                    unqueued.min(batch),
                    format!(
                        "{gaps} memories lack a vector, {unqueued} not queued; would queue {}",
                        unqueued.min(batch)
                    ),
                )
            } else {
                let n = conn.execute(
                    &format!(
                        "INSERT OR IGNORE INTO memory_jobs(id, memory_id, kind, status, created_at, updated_at)
                         SELECT lower(hex(randomblob(16))), m.id, 'embed', 'pending', ?1, ?1 FROM memories m
                         WHERE {UNQUEUED_GAP} ORDER BY m.rowid LIMIT ?2"
                    ),
                    params![now, batch],
                )?;
                (
                    n as i64,
                    format!("{n} embed jobs queued ({gaps} memories lack a vector)"),
                )
            }
        }
        RepairAction::CleanOrphans => {
            // An orphan has no memory row at all: a recoverable tombstone
            // keeps its vector and jobs.
            let v = conn.execute(
                "DELETE FROM memory_vectors WHERE rowid NOT IN (SELECT rowid FROM memories)",
                [],
            )?;
            conn.execute(
                "DELETE FROM memory_embeddings WHERE memory_rowid NOT IN (SELECT rowid FROM memories)",
                [],
            )?;
            let j = conn.execute(
                "DELETE FROM memory_jobs WHERE status IN ('pending', 'failed', 'dead')
                   AND memory_id NOT IN (SELECT id FROM memories)",
                [],
            )?;
            (
                (v + j) as i64,
                format!("{v} orphaned vectors and {j} orphaned jobs removed"),
            )
        }
        RepairAction::Deduplicate { dry_run } => {
            // Within each scope partition the unique index prevents live
            // duplicates; across partitions the same content can repeat.
            let mut stmt = conn.prepare(&format!(
                "SELECT {RECORD_COLUMNS} FROM memories m WHERE m.is_deleted = 0 AND m.pinned = 0 AND EXISTS (
                   SELECT 1 FROM memories o WHERE o.is_deleted = 0 AND o.content_hash = m.content_hash
                     AND o.rowid < m.rowid)"
            ))?;
            let dups: Vec<super::MemoryRecord> = stmt
                .query_map([], super::MemoryRecord::from_row)?
                .collect::<Result<_, _>>()?;
            let n = dups.len() as i64;
            if !dry_run {
                for d in &dups {
                    conn.execute(
                        "UPDATE memories SET is_deleted = 1, deleted_at = ?1, version = version + 1,
                            updated_at = ?1, updated_by = ?2 WHERE id = ?3",
                        params![now, audit.changed_by, d.id],
                    )?;
                    write_history(
                        conn,
                        &d.id,
                        "deleted",
                        Some(&d.content),
                        None,
                        audit,
                        Some("deduplicate"),
                        None,
                        &now,
                    )?;
                }
                deleted = dups
                    .into_iter()
                    .map(|mut d| {
                        d.is_deleted = true;
                        d.deleted_at = Some(now.clone());
                        d.version += 1;
                        d.updated_by = Some(audit.changed_by.clone());
                        d
                    })
                    .collect();
            }
            let verb = if dry_run { "would remove" } else { "removed" };
            (
                n,
                format!("{verb} {n} duplicates (the oldest copy of each stays)"),
            )
        }
        RepairAction::SweepAudit {
            tombstones,
            history,
            completed_jobs,
            dead_jobs,
        } => (
            (tombstones + history + completed_jobs + dead_jobs) as i64,
            format!(
                "archived {tombstones} tombstones; purged {history} history rows, \
                 {completed_jobs} completed and {dead_jobs} dead jobs"
            ),
        ),
    };
    let meta = serde_json::json!({ "action": action.name(), "affected": affected }).to_string();
    write_history(
        conn,
        "_repair",
        "repair",
        None,
        None,
        audit,
        Some(&message),
        Some(&meta),
        &now,
    )?;
    Ok(RepairOutcome {
        action: action.name(),
        success: true,
        affected,
        message,
        deleted,
    })
}

/// A live memory without a vector and without an active embed job.
const UNQUEUED_GAP: &str = "m.is_deleted = 0 AND m.embedding_model IS NULL AND NOT EXISTS (
    SELECT 1 FROM memory_jobs j WHERE j.memory_id = m.id AND j.kind = 'embed' AND j.status IN ('pending', 'leased'))";

/// Duplicate statistics for `GET /api/repair/dedup-stats`.
pub fn dedup_stats(conn: &Connection) -> Result<serde_json::Value, StoreError> {
    let live = count(conn, "SELECT COUNT(*) FROM memories WHERE is_deleted = 0")?;
    let (groups, extra): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM
           (SELECT COUNT(*) AS n FROM memories WHERE is_deleted = 0 GROUP BY content_hash HAVING n > 1)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(serde_json::json!({
        "liveMemories": live, "duplicateGroups": groups, "duplicates": extra,
        "ratio": if live > 0 { extra as f64 / live as f64 } else { 0.0 },
    }))
}

/// Live memories without a vector, for `GET /api/repair/embedding-gaps`.
pub fn embedding_gaps(conn: &Connection, limit: i64) -> Result<serde_json::Value, StoreError> {
    let n = count(
        conn,
        "SELECT COUNT(*) FROM memories WHERE is_deleted = 0 AND embedding_model IS NULL",
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM memories WHERE is_deleted = 0 AND embedding_model IS NULL ORDER BY rowid LIMIT ?1",
    )?;
    let ids: Vec<String> = stmt
        .query_map([limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(serde_json::json!({ "count": n, "ids": ids }))
}
