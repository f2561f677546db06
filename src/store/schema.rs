//! Versioned, checksummed migrations.
//!
//! Each migration is a fixed SQL script with a version number. Applied
//! migrations are recorded in `schema_migrations` with the sha256 of their
//! text; at start every recorded checksum is compared with the one compiled
//! in, so a database changed by a different build is refused instead of
//! being silently misread. The `vec0` table is created after the migrations
//! because its dimension comes from configuration, and the dimension is
//! pinned in `meta` the first time.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::StoreError;

/// One schema step.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "memories",
        sql: r#"
CREATE TABLE memories (
    id                TEXT NOT NULL UNIQUE,
    content           TEXT NOT NULL,
    type              TEXT NOT NULL DEFAULT 'fact',
    importance        REAL NOT NULL DEFAULT 0.8,
    tags              TEXT,
    pinned            INTEGER NOT NULL DEFAULT 0,
    who               TEXT,
    project           TEXT,
    agent             TEXT,
    user              TEXT,
    source_type       TEXT,
    source_id         TEXT,
    content_hash      TEXT NOT NULL,
    version           INTEGER NOT NULL DEFAULT 1,
    is_deleted        INTEGER NOT NULL DEFAULT 0,
    deleted_at        TEXT,
    access_count      INTEGER NOT NULL DEFAULT 0,
    last_accessed     TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    updated_by        TEXT,
    embedding_model   TEXT,
    extraction_status TEXT NOT NULL DEFAULT 'none'
);
-- No index on created_at: rows are appended in time order, so rowid order
-- is creation order (lists sort by rowid) and every index costs the group
-- commit WAL frames (measured in benches/README.md).
-- Dedupe is per scope partition (project, agent, user): a scoped caller can
-- never be handed, or learn the id of, a duplicate outside its scope.
CREATE UNIQUE INDEX idx_memories_hash_live ON memories(
    content_hash, COALESCE(project, ''), COALESCE(agent, ''), COALESCE(user, '')
) WHERE is_deleted = 0;
CREATE UNIQUE INDEX idx_memories_source_live ON memories(
    source_type, source_id, COALESCE(project, ''), COALESCE(agent, ''), COALESCE(user, '')
) WHERE is_deleted = 0 AND source_id IS NOT NULL;
CREATE INDEX idx_memories_tombstones ON memories(deleted_at) WHERE is_deleted = 1;
CREATE INDEX idx_memories_project ON memories(project);

-- History ids are UUIDs for the API but never looked up, so they carry no
-- index, and rows are appended in time order (rowid order is time order,
-- which the retention purge walks): an append costs the table plus one
-- index.
CREATE TABLE memory_history (
    id          TEXT NOT NULL,
    memory_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    old_content TEXT,
    new_content TEXT,
    changed_by  TEXT,
    actor_type  TEXT,
    reason      TEXT,
    metadata    TEXT,
    created_at  TEXT NOT NULL,
    session_id  TEXT,
    request_id  TEXT
);
CREATE INDEX idx_history_memory ON memory_history(memory_id, created_at);

-- Keyword index over live rows only: a tombstone leaves the index and a
-- recover puts it back, so FTS rows == live rows is an invariant the
-- diagnostics can check.
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, content='memories', content_rowid='rowid', tokenize='porter unicode61'
);
-- Merge segments less eagerly: group commits write many small segments and
-- eager merging costs the writer more than it saves readers.
INSERT INTO memories_fts(memories_fts, rank) VALUES ('automerge', 8);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories WHEN new.is_deleted = 0 BEGIN
    INSERT INTO memories_fts(rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories WHEN old.is_deleted = 0 BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
-- Fires only when the indexed text or liveness changes: access tracking and
-- metadata updates never touch the index.
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, is_deleted ON memories
WHEN old.content IS NOT new.content OR old.is_deleted IS NOT new.is_deleted BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE old.is_deleted = 0;
    INSERT INTO memories_fts(rowid, content)
        SELECT new.rowid, new.content WHERE new.is_deleted = 0;
END;

CREATE TABLE memory_jobs (
    id           TEXT NOT NULL PRIMARY KEY,
    memory_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'leased', 'completed', 'failed', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    leased_at    TEXT,
    run_after    TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX idx_jobs_active ON memory_jobs(memory_id, kind)
    WHERE status IN ('pending', 'leased');
CREATE INDEX idx_jobs_status ON memory_jobs(status, created_at);

CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        name: "revocations",
        sql: r#"
CREATE TABLE revoked_tokens (
    kind       TEXT NOT NULL CHECK (kind IN ('jti', 'sub')),
    value      TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    revoked_by TEXT,
    PRIMARY KEY (kind, value)
);
"#,
    },
    Migration {
        version: 3,
        name: "archive",
        sql: r#"
-- Cold storage for tombstones past the recover window: the record as JSON,
-- so the archive survives later column changes.
CREATE TABLE memories_archive (
    id          TEXT NOT NULL PRIMARY KEY,
    record      TEXT NOT NULL,
    deleted_at  TEXT,
    archived_at TEXT NOT NULL
);
"#,
    },
    Migration {
        version: 4,
        name: "embeddings",
        sql: r#"
-- Each live vector as a little-endian f32 blob, keyed by the memory's rowid
-- (the same key as the vec0 table), with the content hash it was computed
-- from: a vector whose hash no longer matches the memory is stale.
CREATE TABLE memory_embeddings (
    memory_rowid INTEGER NOT NULL PRIMARY KEY,
    model        TEXT NOT NULL,
    dims         INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    vector       BLOB NOT NULL,
    created_at   TEXT NOT NULL
);
"#,
    },
    Migration {
        version: 5,
        name: "feedback",
        sql: r#"
-- Agents' ratings of what recall handed them (POST /api/memory/feedback):
-- a running mean in [-1, 1] per (session, memory). Recorded, not used in
-- ranking (docs/architecture.md, "Recall").
CREATE TABLE memory_feedback (
    session_key TEXT NOT NULL,
    memory_id   TEXT NOT NULL,
    score       REAL NOT NULL,
    count       INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (session_key, memory_id)
) WITHOUT ROWID;
"#,
    },
    Migration {
        version: 6,
        name: "keyword_index_who",
        sql: r#"
-- The keyword index also holds `who`: questions name people ("When did
-- Caroline...") whose name is rarely in what they said. Same rules as
-- before: live rows only, touched only when indexed text or liveness
-- changes.
DROP TRIGGER memories_fts_insert;
DROP TRIGGER memories_fts_delete;
DROP TRIGGER memories_fts_update;
DROP TABLE memories_fts;
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, who, content='memories', content_rowid='rowid', tokenize='porter unicode61'
);
INSERT INTO memories_fts(memories_fts, rank) VALUES ('automerge', 8);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories WHEN new.is_deleted = 0 BEGIN
    INSERT INTO memories_fts(rowid, content, who) VALUES (new.rowid, new.content, new.who);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories WHEN old.is_deleted = 0 BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content, who)
        VALUES ('delete', old.rowid, old.content, old.who);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, who, is_deleted ON memories
WHEN old.content IS NOT new.content OR old.who IS NOT new.who
  OR old.is_deleted IS NOT new.is_deleted BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content, who)
        SELECT 'delete', old.rowid, old.content, old.who WHERE old.is_deleted = 0;
    INSERT INTO memories_fts(rowid, content, who)
        SELECT new.rowid, new.content, new.who WHERE new.is_deleted = 0;
END;
INSERT INTO memories_fts(rowid, content, who)
    SELECT rowid, content, who FROM memories WHERE is_deleted = 0;
"#,
    },
    Migration {
        version: 7,
        name: "live_counts",
        sql: r#"
-- Live-row counts per scope partition, kept by triggers, so the stats
-- beside every list are a few rows summed instead of a scan of every
-- memory (tombstones included). `k` is the partition, NULLs kept distinct
-- from any string by quote().
CREATE TABLE memory_counts (
    k        TEXT NOT NULL PRIMARY KEY,
    project  TEXT,
    agent    TEXT,
    user     TEXT,
    live     INTEGER NOT NULL,
    embedded INTEGER NOT NULL,
    critical INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER memory_counts_insert AFTER INSERT ON memories WHEN new.is_deleted = 0 BEGIN
    INSERT INTO memory_counts(k, project, agent, user, live, embedded, critical)
    VALUES (quote(new.project) || ',' || quote(new.agent) || ',' || quote(new.user),
            new.project, new.agent, new.user, 1,
            new.embedding_model IS NOT NULL, new.pinned = 1 OR new.importance >= 0.9)
    ON CONFLICT(k) DO UPDATE SET live = live + 1, embedded = embedded + excluded.embedded,
        critical = critical + excluded.critical;
END;
CREATE TRIGGER memory_counts_delete AFTER DELETE ON memories WHEN old.is_deleted = 0 BEGIN
    UPDATE memory_counts SET live = live - 1,
        embedded = embedded - (old.embedding_model IS NOT NULL),
        critical = critical - (old.pinned = 1 OR old.importance >= 0.9)
    WHERE k = quote(old.project) || ',' || quote(old.agent) || ',' || quote(old.user);
END;
CREATE TRIGGER memory_counts_update
AFTER UPDATE OF is_deleted, embedding_model, pinned, importance, project, agent, user ON memories
BEGIN
    UPDATE memory_counts SET live = live - 1,
        embedded = embedded - (old.embedding_model IS NOT NULL),
        critical = critical - (old.pinned = 1 OR old.importance >= 0.9)
    WHERE old.is_deleted = 0
      AND k = quote(old.project) || ',' || quote(old.agent) || ',' || quote(old.user);
    INSERT INTO memory_counts(k, project, agent, user, live, embedded, critical)
    SELECT quote(new.project) || ',' || quote(new.agent) || ',' || quote(new.user),
           new.project, new.agent, new.user, 1,
           new.embedding_model IS NOT NULL, new.pinned = 1 OR new.importance >= 0.9
    WHERE new.is_deleted = 0
    ON CONFLICT(k) DO UPDATE SET live = live + 1, embedded = embedded + excluded.embedded,
        critical = critical + excluded.critical;
END;
INSERT INTO memory_counts(k, project, agent, user, live, embedded, critical)
    SELECT quote(project) || ',' || quote(agent) || ',' || quote(user), project, agent, user,
           COUNT(*), SUM(embedding_model IS NOT NULL), SUM(pinned = 1 OR importance >= 0.9)
    FROM memories WHERE is_deleted = 0 GROUP BY project, agent, user;
"#,
    },
    Migration {
        version: 8,
        name: "sessions",
        sql: r#"
-- What harness sessions leave behind (SPEC-agents §2). Every row carries
-- the scope of the caller that wrote it; scoped readers see only rows
-- their scope admits.
CREATE TABLE session_checkpoints (
    id                        TEXT NOT NULL PRIMARY KEY,
    session_key               TEXT NOT NULL,
    harness                   TEXT,
    project                   TEXT,
    project_normalized        TEXT,
    trigger                   TEXT NOT NULL,
    digest                    TEXT NOT NULL,
    prompt_count              INTEGER NOT NULL DEFAULT 0,
    memory_queries            TEXT,
    recent_remembers          TEXT,
    focal_entity_ids          TEXT,
    focal_entity_names        TEXT,
    active_aspect_ids         TEXT,
    surfaced_constraint_count INTEGER,
    traversal_memory_count    INTEGER,
    created_at                TEXT NOT NULL,
    scope_project             TEXT,
    scope_agent               TEXT,
    scope_user                TEXT
);
CREATE INDEX idx_checkpoints_session ON session_checkpoints(session_key, created_at);
CREATE INDEX idx_checkpoints_project ON session_checkpoints(project_normalized, created_at);
CREATE INDEX idx_checkpoints_created ON session_checkpoints(created_at);
-- Transcripts queued by session-end for the summary worker (only when an
-- extraction provider is configured). The transcript is cleared once done.
CREATE TABLE summary_jobs (
    id            TEXT NOT NULL PRIMARY KEY,
    session_key   TEXT,
    harness       TEXT NOT NULL,
    project       TEXT,
    agent_id      TEXT,
    transcript    TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    leased_at     TEXT,
    retry_at      TEXT,
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
    scope_project TEXT,
    scope_agent   TEXT,
    scope_user    TEXT
);
CREATE INDEX idx_summary_jobs_status ON summary_jobs(status, created_at);
CREATE TABLE session_summaries (
    id            TEXT NOT NULL PRIMARY KEY,
    parent_id     TEXT,
    project       TEXT,
    depth         INTEGER NOT NULL DEFAULT 0,
    kind          TEXT NOT NULL,
    content       TEXT NOT NULL,
    token_count   INTEGER,
    earliest_at   TEXT,
    latest_at     TEXT,
    session_key   TEXT,
    harness       TEXT,
    agent_id      TEXT,
    created_at    TEXT NOT NULL,
    scope_project TEXT,
    scope_agent   TEXT,
    scope_user    TEXT
);
CREATE INDEX idx_session_summaries_latest ON session_summaries(latest_at);
CREATE INDEX idx_session_summaries_parent ON session_summaries(parent_id);
"#,
    },
    Migration {
        version: 9,
        name: "keyword index and counts written by the inserts",
        sql: r#"
-- An insert trigger makes every INSERT a multi-table statement with a
-- statement journal, and FTS5 flushes its pending terms to disk at each
-- statement savepoint once it is part of the transaction: one index
-- segment per remember instead of one per group commit (half the
-- writer's time under load). The inserts now write the keyword index and
-- the live counts themselves (`store::memories::index_new`) with
-- single-row statements; updates and deletes keep their triggers.
DROP TRIGGER memories_fts_insert;
DROP TRIGGER memory_counts_insert;
"#,
    },
];

/// Hex sha256 of a migration's SQL text.
fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Apply every pending migration, each in its own transaction, after
/// checking the checksums of those already applied.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER NOT NULL PRIMARY KEY,
            name       TEXT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at TEXT NOT NULL
        );",
    )?;
    for m in MIGRATIONS {
        let recorded: Option<String> = conn
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                [m.version],
                |r| r.get(0),
            )
            .optional()?;
        let sum = checksum(m.sql);
        match recorded {
            Some(found) if found == sum => {}
            Some(found) => {
                return Err(StoreError::Schema(format!(
                    "migration {} ({}) was applied with checksum {found}, this build has {sum}",
                    m.version, m.name
                )))
            }
            None => {
                let tx = conn.transaction()?;
                tx.execute_batch(m.sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations(version, name, checksum, applied_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![m.version, m.name, sum, super::now_iso()],
                )?;
                tx.commit()?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
            }
        }
    }
    let newest: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if newest > latest_version() {
        return Err(StoreError::Schema(format!(
            "database schema version {newest} is newer than this build ({})",
            latest_version()
        )));
    }
    Ok(())
}

/// Create the sqlite-vec table for `dims`-dimensional vectors, or check that
/// the existing one has that dimension.
pub fn ensure_vector_table(conn: &Connection, dims: usize) -> Result<(), StoreError> {
    let pinned: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'vector_dims'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match pinned {
        Some(v) if v == dims.to_string() => Ok(()),
        Some(v) => Err(StoreError::Schema(format!(
            "the database holds {v}-dimensional vectors but embedding.dimensions is {dims}"
        ))),
        None => {
            conn.execute_batch(&format!(
                "CREATE VIRTUAL TABLE IF NOT EXISTS memory_vectors USING vec0(
                    embedding float[{dims}] distance_metric=cosine
                 );
                 INSERT INTO meta(key, value) VALUES ('vector_dims', '{dims}');"
            ))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Connection {
        super::super::register_vec_extension();
        Connection::open_in_memory().expect("in-memory db")
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut c = fresh();
        migrate(&mut c).expect("first");
        migrate(&mut c).expect("second");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_changed_migration_is_refused() {
        let mut c = fresh();
        migrate(&mut c).expect("migrate");
        c.execute(
            "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1",
            [],
        )
        .expect("tamper");
        let err = migrate(&mut c).expect_err("must refuse");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn vector_dimension_is_pinned() {
        let mut c = fresh();
        migrate(&mut c).expect("migrate");
        ensure_vector_table(&c, 8).expect("create");
        ensure_vector_table(&c, 8).expect("same dims");
        assert!(ensure_vector_table(&c, 16).is_err());
    }
}
