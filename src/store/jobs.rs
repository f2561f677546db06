//! The pipeline's job queue, in SQLite so it survives restarts.
//!
//! Semantics (SPEC §8): a job is `pending`, `leased`, `completed`, `failed`
//! or `dead`. A lease takes the oldest eligible pending job (its backoff
//! elapsed). A failure adds an attempt and, below `max_attempts`, puts the
//! job back to pending after `min(2^attempts·5, 120)` s; at `max_attempts` it
//! is dead. A lease older than the lease timeout is reaped: the worker that
//! held it died, which counts as a failed attempt (a job that kills its
//! worker must not loop forever). Enqueue is deduped per (memory, kind)
//! while a job is pending or leased (a partial unique index).
//!
//! The functions that write run inside the store writer's transaction and
//! take `now` explicitly, so the semantics are testable with any clock.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{to_iso, StoreError};

/// Jobs per status.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueCounts {
    pub pending: i64,
    pub leased: i64,
    pub completed: i64,
    pub failed: i64,
    pub dead: i64,
}

/// Count jobs by status.
pub fn counts(conn: &Connection) -> Result<QueueCounts, StoreError> {
    let mut c = QueueCounts::default();
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM memory_jobs GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (s, n) = row?;
        match s.as_str() {
            "pending" => c.pending = n,
            "leased" => c.leased = n,
            "completed" => c.completed = n,
            "failed" => c.failed = n,
            "dead" => c.dead = n,
            _ => {}
        }
    }
    Ok(c)
}

/// One job row.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub memory_id: String,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub leased_at: Option<String>,
    pub run_after: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const JOB_COLUMNS: &str = "id, memory_id, kind, status, attempts, max_attempts, leased_at, \
    run_after, error, created_at, updated_at";

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        memory_id: r.get(1)?,
        kind: r.get(2)?,
        status: r.get(3)?,
        attempts: r.get(4)?,
        max_attempts: r.get(5)?,
        leased_at: r.get(6)?,
        run_after: r.get(7)?,
        error: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// A job by id.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Job>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM memory_jobs WHERE id = ?1"
        ))?
        .query_row([id], job_from_row)
        .optional()?)
}

/// Backoff after the `attempts`-th failure: `min(2^attempts·5, 120)` s.
pub fn backoff_secs(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 10) as u32;
    (5_i64 << exp).min(120)
}

/// Queue a job unless one for the same memory and kind is pending or
/// leased. Returns the id of the new or the existing active job.
pub fn enqueue(
    conn: &Connection,
    memory_id: &str,
    kind: &str,
    max_attempts: i64,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = to_iso(now);
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO memory_jobs(id, memory_id, kind, status, max_attempts, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?5)",
        )?
        .execute(params![id, memory_id, kind, max_attempts, now])?;
    if n == 1 {
        return Ok(id);
    }
    Ok(conn
        .prepare_cached(
            "SELECT id FROM memory_jobs WHERE memory_id = ?1 AND kind = ?2 AND status IN ('pending', 'leased')",
        )?
        .query_row(params![memory_id, kind], |r| r.get(0))?)
}

/// Lease the oldest eligible pending job of one of `kinds`.
pub fn lease(
    conn: &Connection,
    kinds: &[&str],
    now: DateTime<Utc>,
) -> Result<Option<Job>, StoreError> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let now = to_iso(now);
    let marks = vec!["?"; kinds.len()].join(", ");
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM memory_jobs
         WHERE status = 'pending' AND (run_after IS NULL OR run_after <= ?1) AND kind IN ({marks})
         ORDER BY created_at, rowid LIMIT 1"
    );
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&now];
    for k in kinds {
        args.push(k);
    }
    let Some(mut job) = conn
        .prepare_cached(&sql)?
        .query_row(args.as_slice(), job_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    conn.prepare_cached(
        "UPDATE memory_jobs SET status = 'leased', leased_at = ?2, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![job.id, now])?;
    job.status = "leased".into();
    job.leased_at = Some(now.clone());
    job.updated_at = now;
    Ok(Some(job))
}

/// Mark a leased job completed. Returns false when it was not leased (a
/// reaper took it back meanwhile).
pub fn complete(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE memory_jobs SET status = 'completed', error = NULL, leased_at = NULL, updated_at = ?2
             WHERE id = ?1 AND status = 'leased'",
        )?
        .execute(params![id, to_iso(now)])?;
    Ok(n == 1)
}

/// Record a failed attempt: back to pending after the backoff, or dead at
/// `max_attempts`. Returns the job as it is now.
pub fn fail(
    conn: &Connection,
    id: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Option<Job>, StoreError> {
    let Some(job) = get(conn, id)? else {
        return Ok(None);
    };
    if job.status != "leased" {
        return Ok(Some(job));
    }
    set_failed(conn, &job, error, now)?;
    get(conn, id)
}

fn set_failed(
    conn: &Connection,
    job: &Job,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let attempts = job.attempts + 1;
    let error: String = error.chars().take(1000).collect();
    if attempts >= job.max_attempts {
        conn.prepare_cached(
            "UPDATE memory_jobs SET status = 'dead', attempts = ?2, error = ?3, leased_at = NULL,
                run_after = NULL, updated_at = ?4 WHERE id = ?1",
        )?
        .execute(params![job.id, attempts, error, to_iso(now)])?;
    } else {
        let after = now + chrono::Duration::seconds(backoff_secs(attempts));
        conn.prepare_cached(
            "UPDATE memory_jobs SET status = 'pending', attempts = ?2, error = ?3, leased_at = NULL,
                run_after = ?4, updated_at = ?5 WHERE id = ?1",
        )?
        .execute(params![job.id, attempts, error, to_iso(after), to_iso(now)])?;
    }
    Ok(())
}

/// Put every leased job back to pending, attempts unchanged: at a clean
/// stop (the work was interrupted, not failed) and by the
/// `release-leases` repair. Returns how many.
pub fn release_all(conn: &Connection, now: DateTime<Utc>) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE memory_jobs SET status = 'pending', leased_at = NULL, updated_at = ?1 WHERE status = 'leased'",
        [to_iso(now)],
    )?)
}

/// Take back leases older than `timeout_secs` (their worker died); each
/// counts as a failed attempt. Returns the jobs as they are now.
pub fn reap(
    conn: &Connection,
    timeout_secs: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, StoreError> {
    let cutoff = to_iso(now - chrono::Duration::seconds(timeout_secs));
    let stale: Vec<Job> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM memory_jobs WHERE status = 'leased' AND leased_at < ?1"
        ))?
        .query_map([cutoff], job_from_row)?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(stale.len());
    for job in stale {
        set_failed(conn, &job, "lease expired (worker stopped)", now)?;
        if let Some(j) = get(conn, &job.id)? {
            out.push(j);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn db() -> Connection {
        let dir = tempfile::tempdir().expect("tmp");
        let mut c = Connection::open(dir.path().join("t.db")).expect("open");
        crate::store::schema::migrate(&mut c).expect("migrate");
        std::mem::forget(dir);
        c
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_and_caps_at_two_minutes() {
        assert_eq!(
            (1..=6).map(backoff_secs).collect::<Vec<_>>(),
            vec![10, 20, 40, 80, 120, 120]
        );
        assert_eq!(backoff_secs(0), 5);
        assert_eq!(backoff_secs(i64::MAX), 120);
    }

    #[test]
    fn enqueue_is_deduped_while_active_and_lease_takes_the_oldest() {
        let c = db();
        let a = enqueue(&c, "m1", "extract", 3, t(0)).expect("a");
        assert_eq!(enqueue(&c, "m1", "extract", 3, t(1)).expect("dup"), a);
        let b = enqueue(&c, "m2", "extract", 3, t(2)).expect("b");
        assert_ne!(a, b);
        let e = enqueue(&c, "m1", "embed", 3, t(3)).expect("other kind");
        assert_ne!(e, a);
        assert_eq!(
            lease(&c, &["extract"], t(5)).expect("l").map(|j| j.id),
            Some(a.clone())
        );
        assert_eq!(
            enqueue(&c, "m1", "extract", 3, t(6)).expect("leased dup"),
            a
        );
        assert_eq!(
            lease(&c, &["extract"], t(5)).expect("l").map(|j| j.id),
            Some(b)
        );
        assert_eq!(lease(&c, &["extract"], t(5)).expect("l"), None);
        assert!(complete(&c, &a, t(7)).expect("done"));
        assert!(!complete(&c, &a, t(8)).expect("twice"));
        let again = enqueue(&c, "m1", "extract", 3, t(9)).expect("after completion");
        assert_ne!(again, a, "a completed job does not block a new one");
    }

    #[test]
    fn failures_back_off_then_die() {
        let c = db();
        let id = enqueue(&c, "m1", "extract", 3, t(0)).expect("enqueue");
        lease(&c, &["extract"], t(0)).expect("lease").expect("job");
        let j = fail(&c, &id, "boom", t(0)).expect("fail").expect("job");
        assert_eq!((j.status.as_str(), j.attempts), ("pending", 1));
        assert_eq!(
            lease(&c, &["extract"], t(9)).expect("early"),
            None,
            "10 s backoff"
        );
        assert!(lease(&c, &["extract"], t(10)).expect("due").is_some());
        let j = fail(&c, &id, "boom", t(10)).expect("fail").expect("job");
        assert_eq!((j.status.as_str(), j.attempts), ("pending", 2));
        assert_eq!(
            lease(&c, &["extract"], t(29)).expect("early"),
            None,
            "20 s backoff"
        );
        assert!(lease(&c, &["extract"], t(30)).expect("due").is_some());
        let j = fail(&c, &id, "boom", t(30)).expect("fail").expect("job");
        assert_eq!(
            (j.status.as_str(), j.attempts, j.error.as_deref()),
            ("dead", 3, Some("boom"))
        );
        assert_eq!(lease(&c, &["extract"], t(10_000)).expect("never"), None);
    }

    #[test]
    fn stale_leases_are_reaped_as_failed_attempts() {
        let c = db();
        let id = enqueue(&c, "m1", "embed", 2, t(0)).expect("enqueue");
        lease(&c, &["embed"], t(0)).expect("lease");
        assert!(reap(&c, 300, t(299)).expect("young").is_empty());
        let back = reap(&c, 300, t(301)).expect("stale");
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].status.as_str(), back[0].attempts), ("pending", 1));
        assert!(
            !complete(&c, &id, t(302)).expect("late worker"),
            "a reaped lease cannot complete"
        );
        lease(&c, &["embed"], t(400))
            .expect("lease")
            .expect("again");
        let dead = reap(&c, 300, t(800)).expect("stale again");
        assert_eq!(dead[0].status, "dead");
    }
}
