//! The `memories` and `memory_history` tables: records, scope filters and
//! every mutation with its history row.
//!
//! Mutations take a `&Connection` that the store writer has already put
//! inside a transaction (a savepoint per operation), so a mutation and its
//! history row always commit together and the version check is atomic.

use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::search::RecallFilter;
use super::StoreError;

/// Days a tombstone can still be recovered.
pub const RETENTION_DAYS: i64 = 30;

/// Columns selected for a full record, in [`MemoryRecord::from_row`] order.
pub const RECORD_COLUMNS: &str =
    "id, content, type, importance, tags, pinned, who, project, agent, \
    user, source_type, source_id, content_hash, version, is_deleted, deleted_at, access_count, \
    last_accessed, created_at, updated_at, updated_by, embedding_model, extraction_status";

fn bool_as_int<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(i64::from(*v))
}

/// A stored memory, serialised the way `GET /api/memory/:id` returns it
/// (snake_case, `pinned` and `is_deleted` as 0/1).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryRecord {
    pub id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub importance: f64,
    pub tags: Option<String>,
    #[serde(serialize_with = "bool_as_int")]
    pub pinned: bool,
    pub who: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub content_hash: String,
    pub version: i64,
    #[serde(serialize_with = "bool_as_int")]
    pub is_deleted: bool,
    pub deleted_at: Option<String>,
    pub access_count: i64,
    pub last_accessed: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: Option<String>,
    pub embedding_model: Option<String>,
    pub extraction_status: String,
}

impl MemoryRecord {
    /// Build a record from a row selected with [`RECORD_COLUMNS`].
    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(MemoryRecord {
            id: r.get(0)?,
            content: r.get(1)?,
            kind: r.get(2)?,
            importance: r.get(3)?,
            tags: r.get(4)?,
            pinned: r.get::<_, i64>(5)? != 0,
            who: r.get(6)?,
            project: r.get(7)?,
            agent: r.get(8)?,
            user: r.get(9)?,
            source_type: r.get(10)?,
            source_id: r.get(11)?,
            content_hash: r.get(12)?,
            version: r.get(13)?,
            is_deleted: r.get::<_, i64>(14)? != 0,
            deleted_at: r.get(15)?,
            access_count: r.get(16)?,
            last_accessed: r.get(17)?,
            created_at: r.get(18)?,
            updated_at: r.get(19)?,
            updated_by: r.get(20)?,
            embedding_model: r.get(21)?,
            extraction_status: r.get(22)?,
        })
    }
}

/// The slice of the workspace a caller may touch. Empty fields are
/// unconstrained; an unscoped caller (local mode, admin) has all `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Scope {
    /// True when no field constrains anything.
    pub fn is_unscoped(&self) -> bool {
        self.project.is_none() && self.agent.is_none() && self.user.is_none()
    }

    /// Whether a record with these fields lies inside the scope.
    pub fn admits(&self, project: Option<&str>, agent: Option<&str>, user: Option<&str>) -> bool {
        fn ok(want: &Option<String>, have: Option<&str>) -> bool {
            want.as_deref().is_none_or(|w| have == Some(w))
        }
        ok(&self.project, project) && ok(&self.agent, agent) && ok(&self.user, user)
    }

    /// Append `AND m.<field> = ?` for each constrained field.
    pub fn push_sql(&self, alias: &str, sql: &mut String, args: &mut Vec<Box<dyn ToSql>>) {
        for (col, v) in [
            ("project", &self.project),
            ("agent", &self.agent),
            ("user", &self.user),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {alias}.{col} = ?"));
                args.push(Box::new(v.clone()));
            }
        }
    }
}

/// Who performs a mutation, for `updated_by` and the history row.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub changed_by: String,
    pub actor_type: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
}

/// Normalise content for deduplication: trim, collapse whitespace,
/// lowercase, strip trailing `.,!?;:`.
pub fn normalize_content(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    for word in content.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            out.extend(c.to_lowercase());
        }
    }
    let trimmed = out
        .trim_end_matches(['.', ',', '!', '?', ';', ':'])
        .trim_end();
    trimmed.to_string()
}

/// Hex sha256 of the normalised content.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(normalize_content(content).as_bytes()))
}

/// A memory ready to be inserted (already parsed, typed and hashed).
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub id: String,
    pub content: String,
    pub kind: String,
    pub importance: f64,
    pub tags: Option<String>,
    pub pinned: bool,
    pub who: String,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    pub source_type: String,
    pub source_id: Option<String>,
    pub content_hash: String,
}

/// Result of an insert: the stored (or pre-existing) record.
#[derive(Debug, Clone)]
pub struct RememberOutcome {
    pub record: MemoryRecord,
    pub deduped: bool,
}

/// What a new live row adds to the keyword index and the live counts.
pub(crate) struct Indexed<'a> {
    pub content: &'a str,
    pub who: Option<&'a str>,
    pub project: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub user: Option<&'a str>,
    /// It has a vector (`embedding_model` set).
    pub embedded: bool,
    /// Pinned or importance ≥ 0.9.
    pub critical: bool,
}

/// Add a newly inserted live memory to the keyword index and to
/// `memory_counts`. Every insert into `memories` calls this in its
/// transaction; updates and deletes are kept by triggers. Schema
/// migration 9 says why inserts have no trigger: both statements here are
/// single-row `VALUES` inserts, which need no statement journal, so FTS5
/// keeps a group commit's terms in memory and writes one segment for it.
pub(crate) fn index_new(
    conn: &Connection,
    rowid: i64,
    row: &Indexed<'_>,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO memories_fts(rowid, content, who) VALUES (?1, ?2, ?3)")?
        .execute(params![rowid, row.content, row.who])?;
    conn.prepare_cached(
        "INSERT INTO memory_counts(k, project, agent, user, live, embedded, critical)
         VALUES (quote(?1) || ',' || quote(?2) || ',' || quote(?3), ?1, ?2, ?3, 1, ?4, ?5)
         ON CONFLICT(k) DO UPDATE SET live = live + 1, embedded = embedded + excluded.embedded,
             critical = critical + excluded.critical",
    )?
    .execute(params![
        row.project,
        row.agent,
        row.user,
        row.embedded,
        row.critical
    ])?;
    Ok(())
}

/// Insert a memory unless a live duplicate (same content hash, or same
/// source) exists; writes the `created` history row.
pub fn insert(
    conn: &Connection,
    new: &NewMemory,
    audit: &Audit,
    at: &str,
) -> Result<RememberOutcome, StoreError> {
    let now = at.to_string();
    // The partial unique indexes do the dedupe: an ignored insert means a
    // live row with the same content hash (or source) exists.
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO memories (id, content, type, importance, tags, pinned, who,
                project, agent, user, source_type, source_id, content_hash, version, is_deleted,
                access_count, created_at, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, 0, 0, ?14, ?14, ?15)",
        )?
        .execute(params![
            new.id,
            new.content,
            new.kind,
            new.importance,
            new.tags,
            new.pinned as i64,
            new.who,
            new.project,
            new.agent,
            new.user,
            new.source_type,
            new.source_id,
            new.content_hash,
            now,
            audit.changed_by,
        ])?;
    if inserted == 0 {
        // Two lookups, each served by its partial unique index (an `OR` of
        // the two would scan the table on every duplicate).
        let partition = "AND COALESCE(project, '') = COALESCE(?2, '') AND COALESCE(agent, '') = COALESCE(?3, '')
                   AND COALESCE(user, '') = COALESCE(?4, '')";
        let mut existing = conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM memories
                 WHERE content_hash = ?1 AND is_deleted = 0 {partition}"
            ))?
            .query_row(
                params![new.content_hash, new.project, new.agent, new.user],
                MemoryRecord::from_row,
            )
            .optional()?;
        if existing.is_none() && new.source_id.is_some() {
            existing = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM memories
                     WHERE source_type = ?1 AND source_id = ?5 AND source_id IS NOT NULL
                       AND is_deleted = 0 {partition}"
                ))?
                .query_row(
                    params![
                        new.source_type,
                        new.project,
                        new.agent,
                        new.user,
                        new.source_id
                    ],
                    MemoryRecord::from_row,
                )
                .optional()?;
        }
        return match existing {
            Some(record) => Ok(RememberOutcome {
                record,
                deduped: true,
            }),
            None => Err(StoreError::Schema(format!(
                "insert of {} ignored without a live duplicate",
                new.id
            ))),
        };
    }
    index_new(
        conn,
        conn.last_insert_rowid(),
        &Indexed {
            content: &new.content,
            who: Some(&new.who),
            project: new.project.as_deref(),
            agent: new.agent.as_deref(),
            user: new.user.as_deref(),
            embedded: false,
            critical: new.pinned || new.importance >= 0.9,
        },
    )?;
    write_history(
        conn,
        &new.id,
        "created",
        None,
        Some(&new.content),
        audit,
        None,
        None,
        &now,
    )?;
    let record = MemoryRecord {
        id: new.id.clone(),
        content: new.content.clone(),
        kind: new.kind.clone(),
        importance: new.importance,
        tags: new.tags.clone(),
        pinned: new.pinned,
        who: Some(new.who.clone()),
        project: new.project.clone(),
        agent: new.agent.clone(),
        user: new.user.clone(),
        source_type: Some(new.source_type.clone()),
        source_id: new.source_id.clone(),
        content_hash: new.content_hash.clone(),
        version: 1,
        is_deleted: false,
        deleted_at: None,
        access_count: 0,
        last_accessed: None,
        created_at: now.clone(),
        updated_at: now,
        updated_by: Some(audit.changed_by.clone()),
        embedding_model: None,
        extraction_status: "none".into(),
    };
    Ok(RememberOutcome {
        record,
        deduped: false,
    })
}

/// Append one history row.
#[allow(clippy::too_many_arguments)]
pub fn write_history(
    conn: &Connection,
    memory_id: &str,
    event: &str,
    old_content: Option<&str>,
    new_content: Option<&str>,
    audit: &Audit,
    reason: Option<&str>,
    metadata: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO memory_history (id, memory_id, event, old_content, new_content, changed_by,
            actor_type, reason, metadata, created_at, session_id, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        uuid::Uuid::now_v7().to_string(),
        memory_id,
        event,
        old_content,
        new_content,
        audit.changed_by,
        audit.actor_type,
        reason,
        metadata,
        at,
        audit.session_id,
        audit.request_id,
    ])?;
    Ok(())
}

/// A record looked up by id for a scoped caller.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Box<MemoryRecord>),
    /// The record exists but lies outside the caller's scope.
    OutOfScope,
    Missing,
}

/// Load a record by id, deleted or not, and check it against `scope`.
pub fn lookup(conn: &Connection, id: &str, scope: &Scope) -> Result<Lookup, StoreError> {
    let rec = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM memories WHERE id = ?1"
        ))?
        .query_row([id], MemoryRecord::from_row)
        .optional()?;
    Ok(match rec {
        None => Lookup::Missing,
        Some(r) if scope.admits(r.project.as_deref(), r.agent.as_deref(), r.user.as_deref()) => {
            Lookup::Found(Box::new(r))
        }
        Some(_) => Lookup::OutOfScope,
    })
}

/// Load a record by id, deleted or not, if it lies in `scope`.
pub fn get_any(
    conn: &Connection,
    id: &str,
    scope: &Scope,
) -> Result<Option<MemoryRecord>, StoreError> {
    Ok(match lookup(conn, id, scope)? {
        Lookup::Found(r) => Some(*r),
        Lookup::OutOfScope | Lookup::Missing => None,
    })
}

/// Load a live record by id within `scope`.
pub fn get_live(
    conn: &Connection,
    id: &str,
    scope: &Scope,
) -> Result<Option<MemoryRecord>, StoreError> {
    Ok(get_any(conn, id, scope)?.filter(|r| !r.is_deleted))
}

/// The record a mutation starts from, or the refusal for a missing or
/// out-of-scope id.
fn load_for_mutation(
    conn: &Connection,
    id: &str,
    scope: &Scope,
) -> Result<Result<MemoryRecord, MutationOutcome>, StoreError> {
    Ok(match lookup(conn, id, scope)? {
        Lookup::Found(r) => Ok(*r),
        Lookup::OutOfScope => Err(MutationOutcome::refused(
            id,
            MutationStatus::OutOfScope,
            None,
        )),
        Lookup::Missing => Err(MutationOutcome::refused(id, MutationStatus::NotFound, None)),
    })
}

/// Live records matching `filter` (its scope included), newest first.
pub fn list(
    conn: &Connection,
    filter: &RecallFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<MemoryRecord>, StoreError> {
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM memories m WHERE m.is_deleted = 0");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    filter.push_sql(&mut sql, &mut args);
    sql.push_str(" ORDER BY m.rowid DESC LIMIT ? OFFSET ?");
    args.push(Box::new(limit));
    args.push(Box::new(offset));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        rusqlite::params_from_iter(args.iter()),
        MemoryRecord::from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many live records match `filter` (its scope included).
pub fn count(conn: &Connection, filter: &RecallFilter) -> Result<i64, StoreError> {
    // `+m.is_deleted`: without it the planner counts by walking the partial
    // index of live hashes and fetching every row from it, ~7x slower than
    // a plain scan at 100k rows (an index on a filtered column, such as
    // `project`, is still used).
    let mut sql = String::from("SELECT COUNT(*) FROM memories m WHERE +m.is_deleted = 0");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    filter.push_sql(&mut sql, &mut args);
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(stmt.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?)
}

/// Counts shown beside a list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListStats {
    pub total: i64,
    pub with_embeddings: i64,
    pub critical: i64,
}

/// Live-row statistics within `scope`.
pub fn stats(conn: &Connection, scope: &Scope) -> Result<ListStats, StoreError> {
    // Summed from the per-partition counts the triggers of migration 7
    // keep: a few rows, however many memories and tombstones exist.
    let mut sql = String::from(
        "SELECT COALESCE(SUM(c.live), 0), COALESCE(SUM(c.embedded), 0),
                COALESCE(SUM(c.critical), 0)
         FROM memory_counts c WHERE 1 = 1",
    );
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    scope.push_sql("c", &mut sql, &mut args);
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(
        stmt.query_row(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(ListStats {
                total: r.get(0)?,
                with_embeddings: r.get(1)?,
                critical: r.get(2)?,
            })
        })?,
    )
}

/// One history row as the API shows it (and as an export carries it).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[serde(default)]
    pub id: String,
    pub event: String,
    pub old_content: Option<String>,
    pub new_content: Option<String>,
    pub changed_by: Option<String>,
    pub actor_type: Option<String>,
    pub reason: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: String,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
}

/// History of a memory, oldest first.
pub fn history(
    conn: &Connection,
    memory_id: &str,
    limit: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HISTORY_COLUMNS} FROM memory_history WHERE memory_id = ?1 ORDER BY rowid LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![memory_id, limit], HistoryEntry::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The history columns, in [`HistoryEntry::from_row`]'s order (Signet's
/// `memory_history` has the same names).
pub const HISTORY_COLUMNS: &str = "id, event, old_content, new_content, changed_by, actor_type, \
    reason, metadata, created_at, session_id, request_id";

impl HistoryEntry {
    /// Build an entry from a row selected with [`HISTORY_COLUMNS`].
    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let meta: Option<String> = r.get(7)?;
        Ok(HistoryEntry {
            id: r.get(0)?,
            event: r.get(1)?,
            old_content: r.get(2)?,
            new_content: r.get(3)?,
            changed_by: r.get(4)?,
            actor_type: r.get(5)?,
            reason: r.get(6)?,
            metadata: meta.and_then(|m| serde_json::from_str(&m).ok()),
            created_at: r.get(8)?,
            session_id: r.get(9)?,
            request_id: r.get(10)?,
        })
    }
}

/// The outcome of a single-record mutation, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationStatus {
    Updated,
    NoChanges,
    Deleted,
    Recovered,
    NotFound,
    /// A PATCH against a tombstone.
    #[serde(rename = "deleted")]
    IsDeleted,
    AlreadyDeleted,
    NotDeleted,
    VersionConflict,
    DuplicateContentHash,
    PinnedRequiresForce,
    AutonomousForceDenied,
    RetentionExpired,
    InvalidRequest,
    /// The record lies outside the caller's token scope.
    OutOfScope,
}

impl MutationStatus {
    /// True for the outcomes that changed (or deliberately did not need to
    /// change) the record.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Self::Updated | Self::NoChanges | Self::Deleted | Self::Recovered
        )
    }
}

/// What a mutation did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationOutcome {
    pub id: String,
    pub status: MutationStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_changed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_memory_id: Option<String>,
    /// Whether the record has a current vector (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded: Option<bool>,
    /// Days a tombstone stays recoverable (recovers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The record after the mutation (for events); not serialised.
    #[serde(skip)]
    pub record: Option<MemoryRecord>,
}

impl MutationOutcome {
    /// An outcome that changed nothing.
    pub fn refused(id: &str, status: MutationStatus, current: Option<i64>) -> Self {
        MutationOutcome {
            id: id.to_string(),
            status,
            current_version: current,
            new_version: None,
            content_changed: None,
            duplicate_memory_id: None,
            embedded: None,
            retention_days: None,
            error: None,
            record: None,
        }
    }
}

/// Field changes of a PATCH. `tags: Some(None)` clears the tags.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub content: Option<String>,
    pub kind: Option<String>,
    pub tags: Option<Option<String>>,
    pub importance: Option<f64>,
    pub pinned: Option<bool>,
}

/// A PATCH of one memory.
#[derive(Debug, Clone)]
pub struct ModifyRequest {
    pub id: String,
    pub patch: Patch,
    pub reason: String,
    pub if_version: Option<i64>,
    pub scope: Scope,
}

/// Apply a PATCH. Checks, in order: not found, deleted, version conflict,
/// duplicate content; an empty diff is `no_changes`.
pub fn modify(
    conn: &Connection,
    req: &ModifyRequest,
    audit: &Audit,
    at: &str,
) -> Result<MutationOutcome, StoreError> {
    let now = at.to_string();
    let cur = match load_for_mutation(conn, &req.id, &req.scope)? {
        Ok(cur) => cur,
        Err(refused) => return Ok(refused),
    };
    if cur.is_deleted {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::IsDeleted,
            Some(cur.version),
        ));
    }
    if let Some(v) = req.if_version {
        if v != cur.version {
            return Ok(MutationOutcome::refused(
                &req.id,
                MutationStatus::VersionConflict,
                Some(cur.version),
            ));
        }
    }
    let p = &req.patch;
    let new_content = p.content.as_ref().filter(|c| **c != cur.content);
    let new_hash = new_content.map(|c| content_hash(c));
    if let Some(h) = &new_hash {
        if *h != cur.content_hash {
            let dup: Option<String> = conn
                .prepare_cached(
                    "SELECT id FROM memories WHERE content_hash = ?1 AND is_deleted = 0 AND id != ?2
                       AND COALESCE(project, '') = COALESCE(?3, '') AND COALESCE(agent, '') = COALESCE(?4, '') AND COALESCE(user, '') = COALESCE(?5, '')",
                )?
                .query_row(params![h, req.id, cur.project, cur.agent, cur.user], |r| r.get(0))
                .optional()?;
            if let Some(dup) = dup {
                let mut out = MutationOutcome::refused(
                    &req.id,
                    MutationStatus::DuplicateContentHash,
                    Some(cur.version),
                );
                out.duplicate_memory_id = Some(dup);
                return Ok(out);
            }
        }
    }
    let new_kind = p.kind.as_ref().filter(|k| **k != cur.kind);
    let new_tags = p.tags.as_ref().filter(|t| **t != cur.tags);
    let new_importance = p
        .importance
        .filter(|i| (*i - cur.importance).abs() > f64::EPSILON);
    let new_pinned = p.pinned.filter(|b| *b != cur.pinned);
    if new_content.is_none()
        && new_kind.is_none()
        && new_tags.is_none()
        && new_importance.is_none()
        && new_pinned.is_none()
    {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::NoChanges,
            Some(cur.version),
        ));
    }

    let mut sql =
        String::from("UPDATE memories SET version = version + 1, updated_at = ?, updated_by = ?");
    let mut args: Vec<Box<dyn ToSql>> =
        vec![Box::new(now.clone()), Box::new(audit.changed_by.clone())];
    let mut next = cur.clone();
    if let (Some(c), Some(h)) = (new_content, &new_hash) {
        sql.push_str(
            ", content = ?, content_hash = ?, embedding_model = NULL, extraction_status = 'none'",
        );
        args.push(Box::new(c.clone()));
        args.push(Box::new(h.clone()));
        next.content = c.clone();
        next.content_hash = h.clone();
        next.embedding_model = None;
        next.extraction_status = "none".into();
    }
    if let Some(k) = new_kind {
        sql.push_str(", type = ?");
        args.push(Box::new(k.clone()));
        next.kind = k.clone();
    }
    if let Some(t) = new_tags {
        sql.push_str(", tags = ?");
        args.push(Box::new(t.clone()));
        next.tags = t.clone();
    }
    if let Some(i) = new_importance {
        sql.push_str(", importance = ?");
        args.push(Box::new(i));
        next.importance = i;
    }
    if let Some(b) = new_pinned {
        sql.push_str(", pinned = ?");
        args.push(Box::new(b as i64));
        next.pinned = b;
    }
    sql.push_str(" WHERE id = ? AND version = ?");
    args.push(Box::new(req.id.clone()));
    args.push(Box::new(cur.version));
    let changed = conn.execute(&sql, rusqlite::params_from_iter(args.iter()))?;
    if changed != 1 {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::VersionConflict,
            Some(cur.version),
        ));
    }
    let mut changes = serde_json::Map::new();
    if let Some(k) = new_kind {
        changes.insert(
            "type".into(),
            serde_json::json!({"from": cur.kind, "to": k}),
        );
    }
    if let Some(t) = new_tags {
        changes.insert(
            "tags".into(),
            serde_json::json!({"from": cur.tags, "to": t}),
        );
    }
    if let Some(i) = new_importance {
        changes.insert(
            "importance".into(),
            serde_json::json!({"from": cur.importance, "to": i}),
        );
    }
    if let Some(b) = new_pinned {
        changes.insert(
            "pinned".into(),
            serde_json::json!({"from": cur.pinned, "to": b}),
        );
    }
    let meta = serde_json::Value::Object(changes).to_string();
    write_history(
        conn,
        &req.id,
        "updated",
        Some(&cur.content),
        Some(&next.content),
        audit,
        Some(&req.reason),
        Some(&meta),
        &now,
    )?;
    next.version = cur.version + 1;
    next.updated_at = now;
    next.updated_by = Some(audit.changed_by.clone());
    Ok(MutationOutcome {
        id: req.id.clone(),
        status: MutationStatus::Updated,
        current_version: Some(cur.version),
        new_version: Some(next.version),
        content_changed: Some(new_content.is_some()),
        duplicate_memory_id: None,
        embedded: Some(next.embedding_model.is_some()),
        retention_days: None,
        error: None,
        record: Some(next),
    })
}

/// A soft delete.
#[derive(Debug, Clone)]
pub struct ForgetRequest {
    pub id: String,
    pub reason: Option<String>,
    pub force: bool,
    pub if_version: Option<i64>,
    pub scope: Scope,
    /// The caller acts on its own (an agent, the pipeline): the domain
    /// layer decides who is; a pinned memory then cannot be forced.
    pub autonomous: bool,
}

/// Soft-delete a memory. Order: not found, already deleted, version
/// conflict, pinned without force, autonomous actor forcing a pinned one.
pub fn forget(
    conn: &Connection,
    req: &ForgetRequest,
    audit: &Audit,
    at: &str,
) -> Result<MutationOutcome, StoreError> {
    let now = at.to_string();
    let cur = match load_for_mutation(conn, &req.id, &req.scope)? {
        Ok(cur) => cur,
        Err(refused) => return Ok(refused),
    };
    if cur.is_deleted {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::AlreadyDeleted,
            Some(cur.version),
        ));
    }
    if let Some(v) = req.if_version {
        if v != cur.version {
            return Ok(MutationOutcome::refused(
                &req.id,
                MutationStatus::VersionConflict,
                Some(cur.version),
            ));
        }
    }
    if cur.pinned && !req.force {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::PinnedRequiresForce,
            Some(cur.version),
        ));
    }
    if cur.pinned && req.autonomous {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::AutonomousForceDenied,
            Some(cur.version),
        ));
    }
    conn.prepare_cached(
        "UPDATE memories SET is_deleted = 1, deleted_at = ?1, version = version + 1,
            updated_at = ?1, updated_by = ?2 WHERE id = ?3",
    )?
    .execute(params![now, audit.changed_by, req.id])?;
    let meta = serde_json::json!({ "force": req.force }).to_string();
    write_history(
        conn,
        &req.id,
        "deleted",
        Some(&cur.content),
        None,
        audit,
        req.reason.as_deref(),
        Some(&meta),
        &now,
    )?;
    let mut next = cur.clone();
    next.is_deleted = true;
    next.deleted_at = Some(now.clone());
    next.version += 1;
    next.updated_at = now;
    next.updated_by = Some(audit.changed_by.clone());
    Ok(MutationOutcome {
        id: req.id.clone(),
        status: MutationStatus::Deleted,
        current_version: Some(cur.version),
        new_version: Some(next.version),
        content_changed: None,
        duplicate_memory_id: None,
        embedded: None,
        retention_days: None,
        error: None,
        record: Some(next),
    })
}

/// Undo a soft delete.
#[derive(Debug, Clone)]
pub struct RecoverRequest {
    pub id: String,
    pub reason: String,
    pub if_version: Option<i64>,
    pub scope: Scope,
}

/// Recover a tombstone. Order: not found, not deleted, version conflict,
/// retention expired. A live duplicate of the content blocks the recover
/// (the live row keeps the hash).
pub fn recover(
    conn: &Connection,
    req: &RecoverRequest,
    audit: &Audit,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MutationOutcome, StoreError> {
    let cur = match load_for_mutation(conn, &req.id, &req.scope)? {
        Ok(cur) => cur,
        Err(refused) => return Ok(refused),
    };
    if !cur.is_deleted {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::NotDeleted,
            Some(cur.version),
        ));
    }
    if let Some(v) = req.if_version {
        if v != cur.version {
            return Ok(MutationOutcome::refused(
                &req.id,
                MutationStatus::VersionConflict,
                Some(cur.version),
            ));
        }
    }
    let expired = cur
        .deleted_at
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .map(|d| now.signed_duration_since(d) > chrono::Duration::days(RETENTION_DAYS))
        .unwrap_or(false);
    if expired {
        return Ok(MutationOutcome::refused(
            &req.id,
            MutationStatus::RetentionExpired,
            Some(cur.version),
        ));
    }
    let dup: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM memories WHERE content_hash = ?1 AND is_deleted = 0
               AND COALESCE(project, '') = COALESCE(?2, '') AND COALESCE(agent, '') = COALESCE(?3, '') AND COALESCE(user, '') = COALESCE(?4, '')",
        )?
        .query_row(params![cur.content_hash, cur.project, cur.agent, cur.user], |r| r.get(0))
        .optional()?;
    if let Some(dup) = dup {
        let mut out = MutationOutcome::refused(
            &req.id,
            MutationStatus::DuplicateContentHash,
            Some(cur.version),
        );
        out.duplicate_memory_id = Some(dup);
        return Ok(out);
    }
    let now = super::to_iso(now);
    conn.prepare_cached(
        "UPDATE memories SET is_deleted = 0, deleted_at = NULL, version = version + 1,
            updated_at = ?1, updated_by = ?2 WHERE id = ?3",
    )?
    .execute(params![now, audit.changed_by, req.id])?;
    write_history(
        conn,
        &req.id,
        "recovered",
        None,
        Some(&cur.content),
        audit,
        Some(&req.reason),
        None,
        &now,
    )?;
    let mut next = cur.clone();
    next.is_deleted = false;
    next.deleted_at = None;
    next.version += 1;
    next.updated_at = now;
    next.updated_by = Some(audit.changed_by.clone());
    Ok(MutationOutcome {
        id: req.id.clone(),
        status: MutationStatus::Recovered,
        current_version: Some(cur.version),
        new_version: Some(next.version),
        content_changed: None,
        duplicate_memory_id: None,
        embedded: None,
        retention_days: Some(RETENTION_DAYS),
        error: None,
        record: Some(next),
    })
}

/// Selectors of a batch forget (besides a text query, handled by search).
#[derive(Debug, Clone, Default)]
pub struct BatchSelector {
    pub ids: Option<Vec<String>>,
    pub kind: Option<String>,
    pub tags: Vec<String>,
    pub who: Option<String>,
    pub source_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: i64,
    pub scope: Scope,
}

/// A batch-forget candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub id: String,
    pub score: f64,
    pub pinned: bool,
    pub version: i64,
}

/// Append a filter that every comma-joined tag in `tags` is present.
pub fn push_tags_sql(
    alias: &str,
    tags: &[String],
    sql: &mut String,
    args: &mut Vec<Box<dyn ToSql>>,
) {
    for t in tags {
        sql.push_str(&format!(
            " AND (',' || COALESCE({alias}.tags, '') || ',') LIKE ?"
        ));
        args.push(Box::new(format!("%,{},%", t.to_lowercase())));
    }
}

/// Live rows matching structured selectors, newest first.
pub fn select_candidates(
    conn: &Connection,
    sel: &BatchSelector,
) -> Result<Vec<Candidate>, StoreError> {
    let mut sql =
        String::from("SELECT m.id, m.pinned, m.version FROM memories m WHERE m.is_deleted = 0");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(ids) = &sel.ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(" AND m.id IN (");
        for (i, id) in ids.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(Box::new(id.clone()));
        }
        sql.push(')');
    }
    for (col, v) in [
        ("type", &sel.kind),
        ("who", &sel.who),
        ("source_type", &sel.source_type),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND m.{col} = ?"));
            args.push(Box::new(v.clone()));
        }
    }
    if let Some(s) = &sel.since {
        sql.push_str(" AND m.created_at >= ?");
        args.push(Box::new(s.clone()));
    }
    if let Some(u) = &sel.until {
        sql.push_str(" AND m.created_at <= ?");
        args.push(Box::new(u.clone()));
    }
    push_tags_sql("m", &sel.tags, &mut sql, &mut args);
    sel.scope.push_sql("m", &mut sql, &mut args);
    sql.push_str(" ORDER BY m.rowid DESC LIMIT ?");
    args.push(Box::new(sel.limit));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok(Candidate {
            id: r.get(0)?,
            score: 1.0,
            pinned: r.get::<_, i64>(1)? != 0,
            version: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Add buffered access counts (id → hits) and stamp `last_accessed`.
pub fn apply_access(conn: &Connection, hits: &[(String, i64)], at: &str) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE memories SET access_count = access_count + ?1, last_accessed = ?2 WHERE id = ?3",
    )?;
    for (id, n) in hits {
        stmt.execute(params![n, at, id])?;
    }
    Ok(())
}

/// Fold ratings (each in [-1, 1]) into the running mean of each
/// (session, memory) pair.
pub fn record_feedback(
    conn: &Connection,
    session_key: &str,
    ratings: &[(String, f64)],
    now: &str,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO memory_feedback(session_key, memory_id, score, count, updated_at)
         VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT(session_key, memory_id) DO UPDATE SET
           score = (score * count + excluded.score) / (count + 1),
           count = count + 1,
           updated_at = excluded.updated_at",
    )?;
    for (id, score) in ratings {
        stmt.execute(rusqlite::params![session_key, id, score, now])?;
    }
    Ok(())
}

/// A bare live memory whose id, content and hash are `content`, indexed
/// like an insert (for store tests that need rows without the full
/// remember path).
#[cfg(test)]
pub(crate) fn insert_bare(conn: &Connection, content: &str) -> i64 {
    conn.execute(
        "INSERT INTO memories(id, content, content_hash, created_at, updated_at)
         VALUES (?1, ?1, ?1, 't', 't')",
        [content],
    )
    .expect("row");
    let rowid = conn.last_insert_rowid();
    let row = Indexed {
        content,
        who: None,
        project: None,
        agent: None,
        user: None,
        embedded: false,
        critical: false,
    };
    index_new(conn, rowid, &row).expect("index");
    rowid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_trims_collapses_lowercases_and_strips_trailing_punctuation() {
        assert_eq!(normalize_content("  Hello   World!?  "), "hello world");
        assert_eq!(normalize_content("A\tb\nC."), "a b c");
        assert_eq!(
            normalize_content("keep. inner, marks"),
            "keep. inner, marks"
        );
        assert_eq!(content_hash("Hello world."), content_hash("hello   WORLD"));
        assert_ne!(content_hash("hello world"), content_hash("hello there"));
    }

    #[test]
    fn live_counts_kept_by_inserts_and_triggers_match_a_full_count_under_random_writes() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().expect("tmp");
        let mut c = Connection::open(dir.path().join("t.db")).expect("open");
        crate::store::schema::migrate(&mut c).expect("migrate");
        c.execute_batch("PRAGMA synchronous = OFF").expect("pragma");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let parts = [None, Some("a"), Some("b"), Some("it's")];
        let pick = |r: &mut rand::rngs::StdRng| parts[r.gen_range(0..parts.len())];
        for i in 0..2_000i64 {
            let id = rng.gen_range(1..=i.max(1));
            let op = rng.gen_range(0..10);
            let res = match op {
                0..=3 => {
                    let (project, agent, user) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
                    let (pinned, importance) = (rng.gen_range(0..2), rng.gen::<f64>());
                    let model = rng.gen_bool(0.5).then_some("m");
                    c.execute(
                        "INSERT INTO memories(id, content, content_hash, created_at, updated_at,
                            project, agent, user, pinned, importance, embedding_model)
                         VALUES (?1, 'x', ?1, 't', 't', ?2, ?3, ?4, ?5, ?6, ?7)",
                        rusqlite::params![
                            i.to_string(),
                            project,
                            agent,
                            user,
                            pinned,
                            importance,
                            model
                        ],
                    )
                    .inspect(|_| {
                        let row = Indexed {
                            content: "x",
                            who: None,
                            project,
                            agent,
                            user,
                            embedded: model.is_some(),
                            critical: pinned == 1 || importance >= 0.9,
                        };
                        index_new(&c, c.last_insert_rowid(), &row).expect("index");
                    })
                }
                4 | 5 => c.execute(
                    "UPDATE memories SET is_deleted = ?1 WHERE id = ?2",
                    rusqlite::params![rng.gen_range(0..2), id.to_string()],
                ),
                6 => c.execute(
                    "UPDATE memories SET embedding_model = ?1, importance = ?2, pinned = ?3
                     WHERE id = ?4",
                    rusqlite::params![
                        rng.gen_bool(0.5).then_some("m"),
                        rng.gen::<f64>(),
                        rng.gen_range(0..2),
                        id.to_string()
                    ],
                ),
                7 => c.execute(
                    "UPDATE memories SET project = ?1 WHERE id = ?2",
                    rusqlite::params![pick(&mut rng), id.to_string()],
                ),
                8 => c.execute("DELETE FROM memories WHERE id = ?1", [id.to_string()]),
                _ => c.execute(
                    "UPDATE memories SET access_count = access_count + 1 WHERE id = ?1",
                    [id.to_string()],
                ),
            };
            res.expect("write");
        }
        let scopes = [
            Scope::default(),
            Scope {
                project: Some("a".into()),
                ..Default::default()
            },
            Scope {
                project: Some("it's".into()),
                agent: Some("b".into()),
                ..Default::default()
            },
            Scope {
                user: Some("zz".into()),
                ..Default::default()
            },
        ];
        for scope in scopes {
            let mut sql = String::from(
                "SELECT COUNT(*), COALESCE(SUM(m.embedding_model IS NOT NULL), 0),
                        COALESCE(SUM(m.pinned = 1 OR m.importance >= 0.9), 0)
                 FROM memories m WHERE m.is_deleted = 0",
            );
            let mut args: Vec<Box<dyn ToSql>> = Vec::new();
            scope.push_sql("m", &mut sql, &mut args);
            let full: (i64, i64, i64) = c
                .query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .expect("full count");
            let kept = stats(&c, &scope).expect("stats");
            assert_eq!(
                (kept.total, kept.with_embeddings, kept.critical),
                full,
                "{scope:?}"
            );
        }
    }

    #[test]
    fn scope_admits_only_matching_fields() {
        let s = Scope {
            project: Some("a".into()),
            ..Default::default()
        };
        assert!(s.admits(Some("a"), None, None));
        assert!(!s.admits(Some("b"), None, None));
        assert!(!s.admits(None, None, None));
        assert!(Scope::default().admits(None, Some("x"), None));
    }
}
