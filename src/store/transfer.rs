//! Bulk export and import of memories as NDJSON, and the reader of a
//! Signet 0.58.1 database.
//!
//! One line is one memory: every column, its history (oldest first, as
//! `GET /api/memory/:id/history` shows it) and its vector (model,
//! dimensions, the content hash it was computed from, little-endian f32 as
//! base64). Lines are in creation order (`created_at`, then `id`), so an
//! export, imported into an empty workspace and exported again, is the
//! same bytes.
//!
//! An import keeps ids, versions, timestamps and history. A line whose id
//! exists is skipped (`exists`); a live line whose content (or source)
//! duplicates a live memory of the same partition is skipped like a
//! remember's duplicate (`duplicate`); a line that cannot be read or whose
//! vector is malformed is refused with the reason. A vector is used when
//! its model and dimensions are the workspace's and it was computed from
//! the line's content; otherwise a live memory is queued for embedding.

use base64::Engine;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::memories::{content_hash, HistoryEntry, MemoryRecord, HISTORY_COLUMNS, RECORD_COLUMNS};
use super::{jobs, vec as vectors, StoreError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A vector as exported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportedVector {
    pub model: String,
    pub dimensions: usize,
    /// The content hash the vector was computed from (absent: assume the
    /// line's content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Little-endian f32, base64.
    pub vector: String,
}

/// One line of an export (and of an import: everything but `content` may
/// be left out).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Line {
    #[serde(default)]
    pub id: Option<String>,
    pub content: String,
    #[serde(rename = "type", default = "default_kind")]
    pub kind: String,
    #[serde(default = "default_importance")]
    pub importance: f64,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub who: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default = "one")]
    pub version: i64,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(default)]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub access_count: i64,
    #[serde(default)]
    pub last_accessed: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(default = "default_extraction")]
    pub extraction_status: String,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub embedding: Option<ExportedVector>,
}

fn default_kind() -> String {
    "fact".into()
}
fn default_importance() -> f64 {
    0.8
}
fn one() -> i64 {
    1
}
fn default_extraction() -> String {
    "none".into()
}

impl Line {
    fn from_record(r: MemoryRecord, history: Vec<HistoryEntry>, v: Option<ExportedVector>) -> Line {
        Line {
            id: Some(r.id),
            content: r.content,
            kind: r.kind,
            importance: r.importance,
            tags: r.tags,
            pinned: r.pinned,
            who: r.who,
            project: r.project,
            agent: r.agent,
            user: r.user,
            source_type: r.source_type,
            source_id: r.source_id,
            version: r.version,
            is_deleted: r.is_deleted,
            deleted_at: r.deleted_at,
            access_count: r.access_count,
            last_accessed: r.last_accessed,
            created_at: Some(r.created_at),
            updated_at: Some(r.updated_at),
            updated_by: r.updated_by,
            extraction_status: r.extraction_status,
            history,
            embedding: v,
        }
    }

    /// Check what can be checked without the store; the vector decoded.
    pub fn validate(&self, max_content_bytes: usize) -> Result<Option<Vec<f32>>, String> {
        if self.content.trim().is_empty() {
            return Err("content is empty".into());
        }
        if self.content.len() > max_content_bytes {
            return Err(format!("content is over {max_content_bytes} bytes"));
        }
        if !(0.0..=1.0).contains(&self.importance) {
            return Err("importance must be within 0..1".into());
        }
        if self.version < 1 {
            return Err("version must be at least 1".into());
        }
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return Err("id must be 1..128 characters without control characters".into());
            }
        }
        let Some(e) = &self.embedding else {
            return Ok(None);
        };
        let bytes = B64
            .decode(e.vector.as_bytes())
            .map_err(|_| "embedding.vector is not base64".to_string())?;
        let v = vectors::from_blob(&bytes)
            .ok_or_else(|| "embedding.vector is not a whole number of f32".to_string())?;
        if v.len() != e.dimensions {
            return Err(format!(
                "embedding has {} values but says {} dimensions",
                v.len(),
                e.dimensions
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err("embedding holds a non-finite value".into());
        }
        Ok(Some(v))
    }
}

/// Where imported vectors may go: the workspace's model and dimensions
/// (`None` when embedding is off).
#[derive(Debug, Clone)]
pub struct VectorTarget {
    pub model: Option<String>,
    pub dims: usize,
    pub max_attempts: i64,
}

/// What happened to one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Inserted; `vector` was stored (rowid and vector, for the index), or
    /// `queued` for embedding.
    Imported {
        id: String,
        vector: Option<(i64, Vec<f32>)>,
        queued: bool,
    },
    Exists {
        id: String,
    },
    Duplicate {
        id: String,
        of: String,
    },
    Refused {
        id: Option<String>,
        error: String,
    },
}

/// A line checked and ready for the writer.
#[derive(Debug, Clone)]
pub struct Ready {
    pub line: Line,
    pub vector: Option<Vec<f32>>,
}

/// Insert a batch of lines (one transaction is the caller's).
pub fn import(
    conn: &Connection,
    batch: &[Ready],
    target: &VectorTarget,
    now: &str,
    now_utc: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Outcome>, StoreError> {
    batch
        .iter()
        .map(|r| import_one(conn, r, target, now, now_utc))
        .collect()
}

fn import_one(
    conn: &Connection,
    r: &Ready,
    target: &VectorTarget,
    now: &str,
    now_utc: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, StoreError> {
    let l = &r.line;
    let id =
        l.id.clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // A vector of our model must have our dimensions.
    let our_model = target
        .model
        .as_deref()
        .zip(l.embedding.as_ref())
        .is_some_and(|(m, e)| m == e.model);
    if let (true, Some(e)) = (our_model, &l.embedding) {
        if e.dimensions != target.dims {
            return Ok(Outcome::Refused {
                id: Some(id),
                error: format!(
                    "embedding has {} dimensions; this workspace's {} vectors have {}",
                    e.dimensions, e.model, target.dims
                ),
            });
        }
    }
    let hash = content_hash(&l.content);
    let created = l.created_at.clone().unwrap_or_else(|| now.to_string());
    let updated = l.updated_at.clone().unwrap_or_else(|| created.clone());
    let deleted_at = match (l.is_deleted, &l.deleted_at) {
        (true, None) => Some(updated.clone()),
        (true, d) => d.clone(),
        (false, _) => None,
    };
    // One statement decides: OR IGNORE leaves out a line whose id exists
    // or that duplicates a live memory (content or source, same partition:
    // the partial unique indexes); only then is the reason looked up.
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO memories(id, content, type, importance, tags, pinned, who, project,
                agent, user, source_type, source_id, content_hash, version, is_deleted, deleted_at,
                access_count, last_accessed, created_at, updated_at, updated_by, extraction_status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22)",
        )?
        .execute(params![
            id,
            l.content,
            l.kind,
            l.importance,
            l.tags,
            l.pinned as i64,
            l.who,
            l.project,
            l.agent,
            l.user,
            l.source_type,
            l.source_id,
            hash,
            l.version,
            l.is_deleted as i64,
            deleted_at,
            l.access_count.max(0),
            l.last_accessed,
            created,
            updated,
            l.updated_by,
            l.extraction_status,
        ])?;
    if n == 0 {
        return why_ignored(conn, id, l, &hash);
    }
    let rowid = conn.last_insert_rowid();
    if !l.is_deleted {
        super::memories::index_new(
            conn,
            rowid,
            &super::memories::Indexed {
                content: &l.content,
                who: l.who.as_deref(),
                project: l.project.as_deref(),
                agent: l.agent.as_deref(),
                user: l.user.as_deref(),
                embedded: false,
                critical: l.pinned || l.importance >= 0.9,
            },
        )?;
    }
    for h in &l.history {
        conn.prepare_cached(
            "INSERT INTO memory_history(id, memory_id, event, old_content, new_content, changed_by,
                actor_type, reason, metadata, created_at, session_id, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            if h.id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                h.id.clone()
            },
            id,
            h.event,
            h.old_content,
            h.new_content,
            h.changed_by,
            h.actor_type,
            h.reason,
            h.metadata.as_ref().map(|m| m.to_string()),
            h.created_at,
            h.session_id,
            h.request_id,
        ])?;
    }
    if l.is_deleted {
        return Ok(Outcome::Imported {
            id,
            vector: None,
            queued: false,
        });
    }
    let usable = match (&l.embedding, &r.vector) {
        (Some(e), Some(v)) if our_model && v.len() == target.dims => {
            e.content_hash.as_deref().is_none_or(|h| h == hash)
        }
        _ => false,
    };
    if let (true, Some(v), Some(model)) = (usable, &r.vector, &target.model) {
        let blob = vectors::to_blob(v);
        conn.prepare_cached(
            "INSERT INTO memory_embeddings(memory_rowid, model, dims, content_hash, vector, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![rowid, model, v.len() as i64, hash, blob, now])?;
        conn.prepare_cached("INSERT INTO memory_vectors(rowid, embedding) VALUES (?1, ?2)")?
            .execute(params![rowid, blob])?;
        conn.prepare_cached("UPDATE memories SET embedding_model = ?2 WHERE rowid = ?1")?
            .execute(params![rowid, model])?;
        return Ok(Outcome::Imported {
            id,
            vector: Some((rowid, v.clone())),
            queued: false,
        });
    }
    let queued = target.model.is_some();
    if queued {
        jobs::enqueue(conn, &id, "embed", target.max_attempts, now_utc)?;
    }
    Ok(Outcome::Imported {
        id,
        vector: None,
        queued,
    })
}

/// Why an insert was ignored: the id exists, or a live duplicate.
fn why_ignored(conn: &Connection, id: String, l: &Line, hash: &str) -> Result<Outcome, StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM memories WHERE id = ?1")?
        .query_row([&id], |x| x.get(0))
        .optional()?;
    if exists.is_some() {
        return Ok(Outcome::Exists { id });
    }
    let partition = [
        l.project.as_deref().unwrap_or(""),
        l.agent.as_deref().unwrap_or(""),
        l.user.as_deref().unwrap_or(""),
    ];
    let of: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM memories WHERE is_deleted = 0
               AND (content_hash = ?1 OR (source_id IS NOT NULL AND source_type IS ?2 AND source_id IS ?3))
               AND COALESCE(project, '') = ?4 AND COALESCE(agent, '') = ?5
               AND COALESCE(user, '') = ?6",
        )?
        .query_row(
            params![hash, l.source_type, l.source_id, partition[0], partition[1], partition[2]],
            |x| x.get(0),
        )
        .optional()?;
    Ok(Outcome::Duplicate {
        id,
        of: of.unwrap_or_default(),
    })
}

/// An archived tombstone: its export line and when it was archived.
#[derive(Serialize)]
struct Archived {
    #[serde(flatten)]
    line: Line,
    archived_at: String,
}

/// The archive line of a tombstone (an export line plus `archived_at`).
pub fn archive_line(
    rec: MemoryRecord,
    history: Vec<HistoryEntry>,
    at: &str,
) -> Result<String, StoreError> {
    serde_json::to_string(&Archived {
        line: Line::from_record(rec, history, None),
        archived_at: at.to_string(),
    })
    .map_err(|e| StoreError::Invalid(format!("cannot encode an archived memory: {e}")))
}

/// Append `lines` to `dir/tombstones-<YYYY-MM>.ndjson.gz` (one gzip
/// member per call; `zcat` and `signet import` read them all) and sync it.
pub fn append_archive(dir: &std::path::Path, at: &str, lines: &[String]) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |e: std::io::Error| StoreError::Invalid(format!("archive {}: {e}", dir.display()));
    let month = at.get(..7).unwrap_or("unknown");
    let created = !dir.is_dir();
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(format!("tombstones-{month}.ndjson.gz"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    for l in lines {
        gz.write_all(l.as_bytes()).map_err(io)?;
        gz.write_all(b"\n").map_err(io)?;
    }
    gz.finish().map_err(io)?.sync_all().map_err(io)?;
    if created {
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
    }
    Ok(())
}

/// Write every memory (deleted ones too) as NDJSON to `out`, in creation
/// order; returns how many.
pub fn export(conn: &Connection, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS}, m.rowid FROM memories m ORDER BY m.created_at, m.id"
    ))?;
    let mut vec_stmt = conn.prepare(
        "SELECT model, dims, content_hash, vector FROM memory_embeddings WHERE memory_rowid = ?1",
    )?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let rec = MemoryRecord::from_row(row)?;
        let rowid: i64 = row.get(23)?;
        let history = super::memories::history(conn, &rec.id, i64::MAX)?;
        let embedding = vec_stmt
            .query_row([rowid], |r| {
                Ok(ExportedVector {
                    model: r.get(0)?,
                    dimensions: r.get::<_, i64>(1)? as usize,
                    content_hash: r.get(2)?,
                    vector: B64.encode(r.get::<_, Vec<u8>>(3)?),
                })
            })
            .optional()?;
        let line = Line::from_record(rec, history, embedding);
        let text = serde_json::to_string(&line)
            .map_err(|e| StoreError::Invalid(format!("cannot encode a memory: {e}")))?;
        out.write_all(text.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
            .map_err(|e| StoreError::Invalid(format!("cannot write the export: {e}")))?;
        n += 1;
    }
    Ok(n)
}

/// What a Signet database holds that an import does not carry.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignetNotes {
    /// Memories read.
    pub memories: u64,
    /// Signet fields with values that have no place here, and how many
    /// memories had one.
    pub dropped_fields: std::collections::BTreeMap<String, u64>,
    /// Vectors read, by model.
    pub vectors_by_model: std::collections::BTreeMap<String, u64>,
}

/// Read a Signet 0.58.1 `memories.db` (read-only) as import lines.
pub fn read_signet(path: &std::path::Path) -> Result<(Vec<Line>, SignetNotes), String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let has = |t: &str| -> bool {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [t],
            |_| Ok(()),
        )
        .is_ok()
    };
    if !has("memories") || !has("memory_history") {
        return Err(format!(
            "{} is not a Signet database (no memories and memory_history tables)",
            path.display()
        ));
    }
    let sql_err = |e: rusqlite::Error| format!("reading {}: {e}", path.display());
    let mut notes = SignetNotes::default();
    let mut hist = conn
        .prepare(&format!(
            "SELECT {HISTORY_COLUMNS} FROM memory_history WHERE memory_id = ?1
             ORDER BY created_at, rowid"
        ))
        .map_err(sql_err)?;
    let mut vecs = if has("embeddings") {
        Some(
            conn.prepare(
                "SELECT dimensions, vector FROM embeddings WHERE source_id = ?1
                 ORDER BY created_at DESC LIMIT 1",
            )
            .map_err(sql_err)?,
        )
    } else {
        None
    };
    let mut stmt = conn
        .prepare(
            "SELECT id, type, content, importance, tags, pinned, who, project, source_type,
                    source_id, version, is_deleted, deleted_at, access_count, last_accessed,
                    created_at, updated_at, updated_by, extraction_status, embedding_model,
                    category, why, confidence
             FROM memories ORDER BY created_at, id",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sql_err)? {
        let id: String = r.get(0).map_err(sql_err)?;
        notes.memories += 1;
        // `why` is 'explicit' unless something said otherwise.
        for (i, name, default) in [(20, "category", None), (21, "why", Some("explicit"))] {
            let v: Option<String> = r.get(i).map_err(sql_err)?;
            if v.is_some_and(|v| Some(v.as_str()) != default) {
                *notes.dropped_fields.entry(name.into()).or_default() += 1;
            }
        }
        if r.get::<_, Option<f64>>(22)
            .map_err(sql_err)?
            .is_some_and(|c| c != 1.0)
        {
            *notes.dropped_fields.entry("confidence".into()).or_default() += 1;
        }
        let history = hist
            .query_map([&id], HistoryEntry::from_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql_err)?;
        let model: Option<String> = r.get(19).map_err(sql_err)?;
        let embedding = match (&mut vecs, &model) {
            (Some(v), Some(model)) => v
                .query_row([&id], |x| {
                    Ok((x.get::<_, i64>(0)?, x.get::<_, Vec<u8>>(1)?))
                })
                .optional()
                .map_err(sql_err)?
                .map(|(dims, blob)| {
                    *notes.vectors_by_model.entry(model.clone()).or_default() += 1;
                    ExportedVector {
                        model: model.clone(),
                        dimensions: dims.max(0) as usize,
                        content_hash: None,
                        vector: B64.encode(blob),
                    }
                }),
            _ => None,
        };
        let importance: Option<f64> = r.get(3).map_err(sql_err)?;
        out.push(Line {
            id: Some(id),
            kind: r.get(1).map_err(sql_err)?,
            content: r.get(2).map_err(sql_err)?,
            importance: importance.unwrap_or(0.5).clamp(0.0, 1.0),
            tags: r.get(4).map_err(sql_err)?,
            pinned: r.get::<_, Option<i64>>(5).map_err(sql_err)?.unwrap_or(0) != 0,
            who: r.get(6).map_err(sql_err)?,
            project: r.get(7).map_err(sql_err)?,
            agent: None,
            user: None,
            source_type: r.get(8).map_err(sql_err)?,
            source_id: r.get(9).map_err(sql_err)?,
            version: r
                .get::<_, Option<i64>>(10)
                .map_err(sql_err)?
                .unwrap_or(1)
                .max(1),
            is_deleted: r.get::<_, Option<i64>>(11).map_err(sql_err)?.unwrap_or(0) != 0,
            deleted_at: r.get(12).map_err(sql_err)?,
            access_count: r.get::<_, Option<i64>>(13).map_err(sql_err)?.unwrap_or(0),
            last_accessed: r.get(14).map_err(sql_err)?,
            created_at: r.get(15).map_err(sql_err)?,
            updated_at: r.get(16).map_err(sql_err)?,
            updated_by: r.get(17).map_err(sql_err)?,
            extraction_status: r
                .get::<_, Option<String>>(18)
                .map_err(sql_err)?
                .unwrap_or_else(default_extraction),
            history,
            embedding,
        });
    }
    Ok((out, notes))
}
