//! What harness sessions leave behind: checkpoints (`SPEC-agents.md` §2),
//! summary jobs (queued by session-end) and session summaries.
//!
//! Every row carries the scope of the caller that wrote it
//! (`scope_project`, `scope_agent`, `scope_user`); a scoped reader sees only
//! rows its scope admits, so a checkpoint's prompts never reach a token of
//! another project. Checkpoints are capped per session and aged out when a
//! new one is written.

use rusqlite::{Connection, OptionalExtension, Row, ToSql};
use serde::Serialize;

use super::{Scope, StoreError};

/// Checkpoints kept per session; older ones are deleted on insert.
pub const CHECKPOINTS_PER_SESSION: i64 = 50;
/// Checkpoints older than this are deleted on insert.
pub const CHECKPOINT_DAYS: i64 = 7;

/// A checkpoint to write.
#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    pub id: String,
    pub session_key: String,
    pub harness: Option<String>,
    pub project: Option<String>,
    pub project_normalized: Option<String>,
    /// `periodic`, `pre_compaction` or `session_end`.
    pub trigger: &'static str,
    /// Already redacted.
    pub digest: String,
    pub prompt_count: i64,
    /// JSON array text.
    pub memory_queries: Option<String>,
    /// JSON array text, already redacted.
    pub recent_remembers: Option<String>,
    pub scope: Scope,
}

/// A checkpoint as served: Signet's raw snake_case row.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoint {
    pub id: String,
    pub session_key: String,
    pub harness: Option<String>,
    pub project: Option<String>,
    pub project_normalized: Option<String>,
    pub trigger: String,
    pub digest: String,
    pub prompt_count: i64,
    pub memory_queries: Option<String>,
    pub recent_remembers: Option<String>,
    pub focal_entity_ids: Option<String>,
    pub focal_entity_names: Option<String>,
    pub active_aspect_ids: Option<String>,
    pub surfaced_constraint_count: Option<i64>,
    pub traversal_memory_count: Option<i64>,
    pub created_at: String,
}

const CHECKPOINT_COLUMNS: &str = "c.id, c.session_key, c.harness, c.project, c.project_normalized,
    c.trigger, c.digest, c.prompt_count, c.memory_queries, c.recent_remembers,
    c.focal_entity_ids, c.focal_entity_names, c.active_aspect_ids,
    c.surfaced_constraint_count, c.traversal_memory_count, c.created_at";

impl Checkpoint {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Checkpoint {
            id: r.get(0)?,
            session_key: r.get(1)?,
            harness: r.get(2)?,
            project: r.get(3)?,
            project_normalized: r.get(4)?,
            trigger: r.get(5)?,
            digest: r.get(6)?,
            prompt_count: r.get(7)?,
            memory_queries: r.get(8)?,
            recent_remembers: r.get(9)?,
            focal_entity_ids: r.get(10)?,
            focal_entity_names: r.get(11)?,
            active_aspect_ids: r.get(12)?,
            surfaced_constraint_count: r.get(13)?,
            traversal_memory_count: r.get(14)?,
            created_at: r.get(15)?,
        })
    }
}

/// Append `AND <alias>.scope_<f> = ?` for each field the reader's scope
/// constrains (the row's writer must have had the same constraint).
fn push_scope(scope: &Scope, alias: &str, sql: &mut String, args: &mut Vec<Box<dyn ToSql>>) {
    for (col, v) in [
        ("scope_project", &scope.project),
        ("scope_agent", &scope.agent),
        ("scope_user", &scope.user),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {alias}.{col} = ?"));
            args.push(Box::new(v.clone()));
        }
    }
}

/// Write a checkpoint, then drop the session's checkpoints beyond
/// [`CHECKPOINTS_PER_SESSION`] and every checkpoint older than
/// [`CHECKPOINT_DAYS`] (`now` and `cutoff` are ISO stamps).
pub fn insert_checkpoint(
    conn: &Connection,
    c: &NewCheckpoint,
    now: &str,
    cutoff: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO session_checkpoints(id, session_key, harness, project, project_normalized,
            trigger, digest, prompt_count, memory_queries, recent_remembers, created_at,
            scope_project, scope_agent, scope_user)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(rusqlite::params![
        c.id,
        c.session_key,
        c.harness,
        c.project,
        c.project_normalized,
        c.trigger,
        c.digest,
        c.prompt_count,
        c.memory_queries,
        c.recent_remembers,
        now,
        c.scope.project,
        c.scope.agent,
        c.scope.user,
    ])?;
    conn.prepare_cached(
        "DELETE FROM session_checkpoints WHERE session_key = ?1 AND rowid NOT IN (
            SELECT rowid FROM session_checkpoints WHERE session_key = ?1
            ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
    )?
    .execute(rusqlite::params![c.session_key, CHECKPOINTS_PER_SESSION])?;
    conn.prepare_cached("DELETE FROM session_checkpoints WHERE created_at < ?1")?
        .execute([cutoff])?;
    Ok(())
}

/// Checkpoints matching `filter` (SQL over alias `c`, with its `args`)
/// that the reader may see, newest first.
fn select_checkpoints(
    conn: &Connection,
    filter: &str,
    mut args: Vec<Box<dyn ToSql>>,
    scope: &Scope,
    limit: i64,
) -> Result<Vec<Checkpoint>, StoreError> {
    let mut sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM session_checkpoints c WHERE {filter}");
    push_scope(scope, "c", &mut sql, &mut args);
    sql.push_str(" ORDER BY c.created_at DESC, c.rowid DESC LIMIT ?");
    args.push(Box::new(limit));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        rusqlite::params_from_iter(args.iter()),
        Checkpoint::from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every checkpoint of a session the reader may see, newest first.
pub fn checkpoints_of_session(
    conn: &Connection,
    key: &str,
    scope: &Scope,
    limit: i64,
) -> Result<Vec<Checkpoint>, StoreError> {
    let args: Vec<Box<dyn ToSql>> = vec![Box::new(key.to_string())];
    select_checkpoints(conn, "c.session_key = ?", args, scope, limit)
}

/// The newest checkpoints of a (normalised) project, newest first;
/// `since` (ISO) keeps only younger ones.
pub fn checkpoints_of_project(
    conn: &Connection,
    project_normalized: &str,
    scope: &Scope,
    since: Option<&str>,
    limit: i64,
) -> Result<Vec<Checkpoint>, StoreError> {
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(project_normalized.to_string())];
    let filter = match since {
        Some(s) => {
            args.push(Box::new(s.to_string()));
            "c.project_normalized = ? AND c.created_at >= ?"
        }
        None => "c.project_normalized = ?",
    };
    select_checkpoints(conn, filter, args, scope, limit)
}

/// A transcript queued for summarising (session-end).
#[derive(Debug, Clone)]
pub struct NewSummaryJob {
    pub id: String,
    pub session_key: Option<String>,
    pub harness: String,
    pub project: Option<String>,
    pub agent_id: Option<String>,
    pub transcript: String,
    pub scope: Scope,
}

/// Queue a summary job (status `pending`).
pub fn insert_summary_job(
    conn: &Connection,
    j: &NewSummaryJob,
    now: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO summary_jobs(id, session_key, harness, project, agent_id, transcript, status,
            attempts, created_at, scope_project, scope_agent, scope_user)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?8, ?9, ?10)",
    )?
    .execute(rusqlite::params![
        j.id,
        j.session_key,
        j.harness,
        j.project,
        j.agent_id,
        j.transcript,
        now,
        j.scope.project,
        j.scope.agent,
        j.scope.user,
    ])?;
    Ok(())
}

/// A queued summary job as the worker sees it.
#[derive(Debug, Clone)]
pub struct SummaryJob {
    pub id: String,
    pub session_key: Option<String>,
    pub harness: String,
    pub project: Option<String>,
    pub agent_id: Option<String>,
    pub transcript: String,
    pub attempts: i64,
    pub scope: Scope,
    pub created_at: String,
}

/// Lease the oldest pending summary job (status → `leased`, one more
/// attempt), or take back one leased before `stale` (its worker died).
pub fn lease_summary_job(
    conn: &Connection,
    now: &str,
    stale: &str,
) -> Result<Option<SummaryJob>, StoreError> {
    let job = conn
        .prepare_cached(
            "SELECT id, session_key, harness, project, agent_id, transcript, attempts,
                    scope_project, scope_agent, scope_user, created_at
             FROM summary_jobs
             WHERE (status = 'pending' AND (retry_at IS NULL OR retry_at <= ?2))
                OR (status = 'leased' AND leased_at < ?1)
             ORDER BY created_at, rowid LIMIT 1",
        )?
        .query_row([stale, now], |r| {
            Ok(SummaryJob {
                id: r.get(0)?,
                session_key: r.get(1)?,
                harness: r.get(2)?,
                project: r.get(3)?,
                agent_id: r.get(4)?,
                transcript: r.get(5)?,
                attempts: r.get::<_, i64>(6)? + 1,
                scope: Scope {
                    project: r.get(7)?,
                    agent: r.get(8)?,
                    user: r.get(9)?,
                },
                created_at: r.get(10)?,
            })
        })
        .optional()?;
    if let Some(j) = &job {
        conn.prepare_cached(
            "UPDATE summary_jobs SET status = 'leased', leased_at = ?2, attempts = attempts + 1
             WHERE id = ?1",
        )?
        .execute(rusqlite::params![j.id, now])?;
    }
    Ok(job)
}

/// A finished summary: the job is `completed` and the summary row written.
#[derive(Debug, Clone)]
pub struct NewSummary {
    pub id: String,
    pub job_id: String,
    pub content: String,
    pub earliest_at: String,
    pub latest_at: String,
}

/// Finish a job with its summary (the row inherits the job's session,
/// project, harness, agent and scope).
pub fn complete_summary_job(
    conn: &Connection,
    s: &NewSummary,
    now: &str,
) -> Result<(), StoreError> {
    let tokens = (s.content.chars().count() as i64 + 3) / 4;
    conn.prepare_cached(
        "INSERT INTO session_summaries(id, project, depth, kind, content, token_count,
            earliest_at, latest_at, session_key, harness, agent_id, created_at,
            scope_project, scope_agent, scope_user)
         SELECT ?1, project, 0, 'session', ?2, ?3, ?4, ?5, session_key, harness, agent_id, ?6,
                scope_project, scope_agent, scope_user
         FROM summary_jobs WHERE id = ?7",
    )?
    .execute(rusqlite::params![
        s.id,
        s.content,
        tokens,
        s.earliest_at,
        s.latest_at,
        now,
        s.job_id
    ])?;
    conn.prepare_cached(
        "UPDATE summary_jobs SET status = 'completed', completed_at = ?2, error = NULL,
            transcript = '' WHERE id = ?1",
    )?
    .execute(rusqlite::params![s.job_id, now])?;
    Ok(())
}

/// Record a failed attempt: back to `pending` after a backoff of
/// `min(2^attempts · 5, 120)` seconds, or `dead` after `max_attempts`.
pub fn fail_summary_job(
    conn: &Connection,
    id: &str,
    error: &str,
    max_attempts: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let attempts: i64 = conn
        .prepare_cached("SELECT attempts FROM summary_jobs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let backoff = (5_i64 << attempts.clamp(0, 5)).min(120);
    let retry_at = super::to_iso(now + chrono::Duration::seconds(backoff));
    conn.prepare_cached(
        "UPDATE summary_jobs SET error = ?2, leased_at = NULL, retry_at = ?4,
            status = CASE WHEN attempts >= ?3 THEN 'dead' ELSE 'pending' END
         WHERE id = ?1",
    )?
    .execute(rusqlite::params![id, error, max_attempts, retry_at])?;
    Ok(())
}

/// A session summary as served (`GET /api/sessions/summaries`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub id: String,
    pub project: Option<String>,
    pub depth: i64,
    pub kind: String,
    pub content: String,
    #[serde(rename = "token_count")]
    pub token_count: Option<i64>,
    #[serde(rename = "earliest_at")]
    pub earliest_at: Option<String>,
    #[serde(rename = "latest_at")]
    pub latest_at: Option<String>,
    #[serde(rename = "session_key")]
    pub session_key: Option<String>,
    pub harness: Option<String>,
    #[serde(rename = "agent_id")]
    pub agent_id: Option<String>,
    #[serde(rename = "created_at")]
    pub created_at: String,
    pub child_count: i64,
}

/// Summaries the reader may see, newest `latest_at` first, and their total.
pub fn summaries(
    conn: &Connection,
    project: Option<&str>,
    depth: Option<i64>,
    scope: &Scope,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Summary>, i64), StoreError> {
    let mut filter = String::from(" WHERE 1 = 1");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(p) = project {
        filter.push_str(" AND s.project = ?");
        args.push(Box::new(p.to_string()));
    }
    if let Some(d) = depth {
        filter.push_str(" AND s.depth = ?");
        args.push(Box::new(d));
    }
    push_scope(scope, "s", &mut filter, &mut args);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM session_summaries s{filter}"))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    let sql = format!(
        "SELECT s.id, s.project, s.depth, s.kind, s.content, s.token_count, s.earliest_at,
                s.latest_at, s.session_key, s.harness, s.agent_id, s.created_at,
                (SELECT COUNT(*) FROM session_summaries ch WHERE ch.parent_id = s.id)
         FROM session_summaries s{filter}
         ORDER BY s.latest_at DESC, s.rowid DESC LIMIT ? OFFSET ?"
    );
    args.push(Box::new(limit));
    args.push(Box::new(offset));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok(Summary {
            id: r.get(0)?,
            project: r.get(1)?,
            depth: r.get(2)?,
            kind: r.get(3)?,
            content: r.get(4)?,
            token_count: r.get(5)?,
            earliest_at: r.get(6)?,
            latest_at: r.get(7)?,
            session_key: r.get(8)?,
            harness: r.get(9)?,
            agent_id: r.get(10)?,
            created_at: r.get(11)?,
            child_count: r.get(12)?,
        })
    })?;
    Ok((rows.collect::<Result<_, _>>()?, total))
}

/// Counts of the summary queue by status (pending, leased, completed, dead).
pub fn summary_job_counts(conn: &Connection) -> Result<[i64; 4], StoreError> {
    let mut out = [0; 4];
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM summary_jobs GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (status, n) = row?;
        let i = match status.as_str() {
            "pending" => 0,
            "leased" => 1,
            "completed" => 2,
            _ => 3,
        };
        out[i] += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().expect("open");
        crate::store::schema::migrate(&mut c).expect("migrate");
        c
    }

    fn cp(key: &str, scope: Scope) -> NewCheckpoint {
        NewCheckpoint {
            id: uuid::Uuid::new_v4().to_string(),
            session_key: key.into(),
            harness: Some("claude-code".into()),
            project: Some("/p".into()),
            project_normalized: Some("/p".into()),
            trigger: "periodic",
            digest: "## Session Checkpoint".into(),
            prompt_count: 3,
            memory_queries: Some("[\"a\"]".into()),
            recent_remembers: None,
            scope,
        }
    }

    #[test]
    fn checkpoints_are_capped_per_session_and_scoped() {
        let c = db();
        for i in 0..(CHECKPOINTS_PER_SESSION + 5) {
            let now = format!("2026-01-01T00:{:02}:{:02}.000Z", i / 60, i % 60);
            insert_checkpoint(
                &c,
                &cp("k", Scope::default()),
                &now,
                "2025-12-01T00:00:00.000Z",
            )
            .expect("insert");
        }
        let all = checkpoints_of_session(&c, "k", &Scope::default(), 1000).expect("read");
        assert_eq!(all.len() as i64, CHECKPOINTS_PER_SESSION);
        assert_eq!(all[0].created_at, "2026-01-01T00:00:54.000Z");

        let alpha = Scope {
            project: Some("alpha".into()),
            ..Scope::default()
        };
        insert_checkpoint(&c, &cp("s", alpha.clone()), "2026-01-01T01:00:00.000Z", "")
            .expect("insert");
        let beta = Scope {
            project: Some("beta".into()),
            ..Scope::default()
        };
        assert_eq!(
            checkpoints_of_session(&c, "s", &alpha, 10)
                .expect("r")
                .len(),
            1
        );
        assert!(checkpoints_of_session(&c, "s", &beta, 10)
            .expect("r")
            .is_empty());
        assert!(checkpoints_of_session(&c, "k", &alpha, 10)
            .expect("r")
            .is_empty());
    }

    #[test]
    fn old_checkpoints_age_out_on_insert() {
        let c = db();
        insert_checkpoint(
            &c,
            &cp("old", Scope::default()),
            "2026-01-01T00:00:00.000Z",
            "",
        )
        .expect("insert");
        insert_checkpoint(
            &c,
            &cp("new", Scope::default()),
            "2026-01-09T00:00:00.000Z",
            "2026-01-02T00:00:00.000Z",
        )
        .expect("insert");
        assert!(checkpoints_of_session(&c, "old", &Scope::default(), 10)
            .expect("r")
            .is_empty());
        let p = checkpoints_of_project(&c, "/p", &Scope::default(), None, 10).expect("r");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].session_key, "new");
    }

    #[test]
    fn summary_jobs_lease_complete_and_fail() {
        let c = db();
        let job = NewSummaryJob {
            id: "j1".into(),
            session_key: Some("k".into()),
            harness: "claude-code".into(),
            project: Some("/p".into()),
            agent_id: None,
            transcript: "User: hi".into(),
            scope: Scope::default(),
        };
        insert_summary_job(&c, &job, "2026-01-01T00:00:00.000Z").expect("insert");
        let leased = lease_summary_job(&c, "2026-01-01T00:00:01.000Z", "2026-01-01T00:00:00.000Z")
            .expect("lease")
            .expect("a job");
        assert_eq!(leased.attempts, 1);
        assert!(
            lease_summary_job(&c, "2026-01-01T00:00:02.000Z", "2026-01-01T00:00:00.000Z")
                .expect("lease")
                .is_none()
        );
        fail_summary_job(&c, "j1", "llm down", 1, chrono::Utc::now()).expect("fail");
        assert_eq!(summary_job_counts(&c).expect("counts"), [0, 0, 0, 1]);
        insert_summary_job(
            &c,
            &NewSummaryJob {
                id: "j2".into(),
                ..job
            },
            "2026-01-01T00:00:03.000Z",
        )
        .expect("insert");
        let j = lease_summary_job(&c, "2026-01-01T00:00:04.000Z", "")
            .expect("lease")
            .expect("job");
        complete_summary_job(
            &c,
            &NewSummary {
                id: "s1".into(),
                job_id: j.id,
                content: "We fixed the login bug.".into(),
                earliest_at: "2026-01-01T00:00:00.000Z".into(),
                latest_at: "2026-01-01T00:00:03.000Z".into(),
            },
            "2026-01-01T00:00:05.000Z",
        )
        .expect("complete");
        let (rows, total) =
            summaries(&c, Some("/p"), None, &Scope::default(), 50, 0).expect("summaries");
        assert_eq!(total, 1);
        assert_eq!(rows[0].content, "We fixed the login bug.");
        assert_eq!(rows[0].session_key.as_deref(), Some("k"));
        assert_eq!(summary_job_counts(&c).expect("counts"), [0, 0, 1, 1]);
    }
}
