//! Keyword search over the FTS5 index, with filters and scope applied
//! inside the query (before the limit), and the scoring rules of recall.

use rusqlite::types::ToSql;
use rusqlite::Connection;
use serde::Serialize;

use super::memories::{push_tags_sql, Scope};
use super::StoreError;

/// Build an FTS5 MATCH expression from user text: every token is quoted
/// (so no user text can break the syntax), `AND`/`OR`/`NOT` are kept as
/// operators where they can stand. Returns `None` when nothing searchable
/// is left.
pub fn fts_query(text: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending_op: Option<&str> = None;
    for raw in text.split_whitespace() {
        if matches!(raw, "AND" | "OR" | "NOT") {
            if !parts.is_empty() {
                pending_op = Some(match raw {
                    "AND" => "AND",
                    "OR" => "OR",
                    _ => "NOT",
                });
            }
            continue;
        }
        let cleaned: String = raw.chars().filter(|c| *c != '"').collect();
        if !cleaned.chars().any(char::is_alphanumeric) {
            continue;
        }
        if let Some(op) = pending_op.take() {
            parts.push(op.to_string());
        }
        parts.push(format!("\"{cleaned}\""));
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" "))
    }
}

/// Structured filters of a recall, applied inside each leg.
#[derive(Debug, Clone, Default)]
pub struct RecallFilter {
    pub kind: Option<String>,
    pub tags: Vec<String>,
    pub who: Option<String>,
    pub pinned: Option<bool>,
    pub importance_min: Option<f64>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub project: Option<String>,
    pub scope: Scope,
    /// Exactly this (project, agent, user) partition, unset fields
    /// included (the pipeline compares a memory only with its own
    /// partition, the one dedupe uses).
    pub partition: Option<[Option<String>; 3]>,
}

impl RecallFilter {
    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.tags.is_empty()
            && self.who.is_none()
            && self.pinned.is_none()
            && self.importance_min.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.project.is_none()
            && self.scope.is_unscoped()
            && self.partition.is_none()
    }

    fn push_sql(&self, sql: &mut String, args: &mut Vec<Box<dyn ToSql>>) {
        for (col, v) in [
            ("type", &self.kind),
            ("who", &self.who),
            ("project", &self.project),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND m.{col} = ?"));
                args.push(Box::new(v.clone()));
            }
        }
        if let Some(p) = self.pinned {
            sql.push_str(" AND m.pinned = ?");
            args.push(Box::new(p as i64));
        }
        if let Some(i) = self.importance_min {
            sql.push_str(" AND m.importance >= ?");
            args.push(Box::new(i));
        }
        if let Some(s) = &self.since {
            sql.push_str(" AND m.created_at >= ?");
            args.push(Box::new(s.clone()));
        }
        if let Some(u) = &self.until {
            sql.push_str(" AND m.created_at <= ?");
            args.push(Box::new(u.clone()));
        }
        push_tags_sql("m", &self.tags, sql, args);
        self.scope.push_sql("m", sql, args);
        if let Some(p) = &self.partition {
            for (col, v) in ["project", "agent", "user"].iter().zip(p) {
                sql.push_str(&format!(" AND COALESCE(m.{col}, '') = ?"));
                args.push(Box::new(v.clone().unwrap_or_default()));
            }
        }
    }
}

/// A row found by a search leg, before scoring.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub content: String,
    pub kind: String,
    pub tags: Option<String>,
    pub pinned: bool,
    pub importance: f64,
    pub who: Option<String>,
    pub project: Option<String>,
    pub created_at: String,
    pub access_count: i64,
    pub last_accessed: Option<String>,
    /// Raw BM25 (negative: lower is better).
    pub raw: f64,
}

const HIT_COLUMNS: &str = "m.id, m.content, m.type, m.tags, m.pinned, m.importance, m.who, \
    m.project, m.created_at, m.access_count, m.last_accessed";

fn hit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hit> {
    Ok(Hit {
        id: r.get(0)?,
        content: r.get(1)?,
        kind: r.get(2)?,
        tags: r.get(3)?,
        pinned: r.get::<_, i64>(4)? != 0,
        importance: r.get(5)?,
        who: r.get(6)?,
        project: r.get(7)?,
        created_at: r.get(8)?,
        access_count: r.get(9)?,
        last_accessed: r.get(10)?,
        raw: r.get(11)?,
    })
}

/// The keyword leg: the best `limit` live rows for `match_expr` that pass
/// `filter`, best first. The FTS index holds live rows only; the join still
/// checks `is_deleted` so a row can never leak whatever the index says.
pub fn keyword(
    conn: &Connection,
    match_expr: &str,
    filter: &RecallFilter,
    limit: i64,
) -> Result<Vec<Hit>, StoreError> {
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(match_expr.to_string())];
    let sql = if filter.is_empty() {
        // FTS5 ranks and cuts inside the virtual table; only `limit` rows
        // are joined.
        args.push(Box::new(limit));
        format!(
            "SELECT {HIT_COLUMNS}, f.rank FROM
               (SELECT rowid, rank FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rank LIMIT ?) f
             JOIN memories m ON m.rowid = f.rowid
             WHERE m.is_deleted = 0 ORDER BY f.rank"
        )
    } else {
        let mut sql = format!(
            "SELECT {HIT_COLUMNS}, f.rank FROM
               (SELECT rowid, rank FROM memories_fts WHERE memories_fts MATCH ?) f
             JOIN memories m ON m.rowid = f.rowid
             WHERE m.is_deleted = 0"
        );
        filter.push_sql(&mut sql, &mut args);
        sql.push_str(" ORDER BY f.rank LIMIT ?");
        args.push(Box::new(limit));
        sql
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), hit_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One scored recall result, as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scored {
    pub id: String,
    pub content: String,
    pub score: f64,
    pub source: &'static str,
    #[serde(rename = "type")]
    pub kind: String,
    pub tags: Option<String>,
    pub pinned: bool,
    pub importance: f64,
    pub who: Option<String>,
    pub project: Option<String>,
    pub created_at: String,
}

/// Normalise BM25 scores of one leg: `|raw| / max|raw|`.
pub fn normalise_bm25(raw: &[f64]) -> Vec<f64> {
    let max = raw.iter().fold(0.0_f64, |m, r| m.max(r.abs()));
    raw.iter()
        .map(|r| if max > 0.0 { r.abs() / max } else { 0.0 })
        .collect()
}

/// The rehearsal boost: `score·(1 + 0.1·ln(access_count+1)·0.5^(days/30))`.
pub fn rehearsal(score: f64, access_count: i64, days_since_access: f64) -> f64 {
    let n = access_count.max(0) as f64;
    score * (1.0 + 0.1 * (n + 1.0).ln() * 0.5_f64.powf(days_since_access.max(0.0) / 30.0))
}

/// Round to two decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Content shown in results: over 500 characters is cut and marked.
pub fn truncate_content(content: &str) -> String {
    match content.char_indices().nth(500) {
        Some((i, _)) => format!("{} [truncated]", &content[..i]),
        None => content.to_string(),
    }
}

/// Days between `at` (RFC 3339) and now; 0 when unknown.
pub fn days_since(at: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> f64 {
    at.and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
        .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds() as f64 / 86_400.0)
        .unwrap_or(0.0)
}

/// A candidate after fusion, before rehearsal and rounding.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub hit: Hit,
    pub score: f64,
    pub source: &'static str,
}

/// Fuse the two legs (SPEC §6). Keyword scores are normalised
/// `|raw|/max|raw|` within their leg; vector scores are `1 - cosine
/// distance`. A row with both scores above zero gets `alpha·vec +
/// (1-alpha)·bm25` and source `hybrid`; else the score of the leg that has
/// it (`keyword` or `vector`).
pub fn fuse(keyword: Vec<Hit>, vector: Vec<(Hit, f64)>, alpha: f64) -> Vec<Candidate> {
    let raw: Vec<f64> = keyword.iter().map(|h| h.raw).collect();
    let norm = normalise_bm25(&raw);
    let mut by_id: std::collections::HashMap<String, (Hit, Option<f64>, Option<f64>)> =
        std::collections::HashMap::with_capacity(keyword.len() + vector.len());
    let mut order: Vec<String> = Vec::with_capacity(keyword.len() + vector.len());
    for (h, k) in keyword.into_iter().zip(norm) {
        order.push(h.id.clone());
        by_id.insert(h.id.clone(), (h, Some(k), None));
    }
    for (h, v) in vector {
        match by_id.get_mut(&h.id) {
            Some(e) => e.2 = Some(v),
            None => {
                order.push(h.id.clone());
                by_id.insert(h.id.clone(), (h, None, Some(v)));
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .map(|(hit, k, v)| {
            let (score, source) = match (k, v) {
                (Some(k), Some(v)) if k > 0.0 && v > 0.0 => {
                    (alpha * v + (1.0 - alpha) * k, "hybrid")
                }
                (Some(k), Some(v)) if v > k => (v, "vector"),
                (Some(k), _) => (k, "keyword"),
                (None, Some(v)) => (v, "vector"),
                (None, None) => (0.0, "keyword"),
            };
            Candidate { hit, score, source }
        })
        .collect()
}

/// Finish fused candidates: drop below `min_score`, apply the rehearsal
/// boost, round to two decimals, truncate long content, best first, at
/// most `limit`.
pub fn finish(
    candidates: Vec<Candidate>,
    min_score: f64,
    limit: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Scored> {
    let mut out: Vec<Scored> = candidates
        .into_iter()
        .filter(|c| c.score >= min_score)
        .map(|c| {
            let h = c.hit;
            let boosted = rehearsal(
                c.score,
                h.access_count,
                days_since(h.last_accessed.as_deref(), now),
            );
            Scored {
                score: round2(boosted),
                source: c.source,
                content: truncate_content(&h.content),
                id: h.id,
                kind: h.kind,
                tags: h.tags,
                pinned: h.pinned,
                importance: h.importance,
                who: h.who,
                project: h.project,
                created_at: h.created_at,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(limit);
    out
}

/// Score keyword hits alone (no vector leg).
pub fn score_keyword(hits: Vec<Hit>, min_score: f64, limit: usize) -> Vec<Scored> {
    finish(
        fuse(hits, Vec::new(), 0.0),
        min_score,
        limit,
        chrono::Utc::now(),
    )
}

/// The vector leg: the best `limit` live rows by cosine similarity to `q`
/// (a unit vector) that pass `filter`, best first, excluding `exclude`.
/// Candidates come from the in-memory index best first (by its quantised
/// scores), in growing batches, each checked in SQLite (live, in scope,
/// filters, vector current) and scored exactly from its stored vector,
/// until `limit` passed or the index is exhausted: a selective filter or
/// scope never loses results to the limit.
pub fn vector(
    conn: &Connection,
    index: &super::vec::VectorIndex,
    q: &[f32],
    filter: &RecallFilter,
    limit: usize,
    exclude: Option<i64>,
) -> Result<Vec<(Hit, f64)>, StoreError> {
    let mut out: Vec<(Hit, f64)> = Vec::with_capacity(limit * 2);
    let check = |ids: Vec<i64>, out: &mut Vec<(Hit, f64)>| -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.into_iter().filter(|r| Some(*r) != exclude).collect();
        if !ids.is_empty() {
            for (hit, v) in check_candidates(conn, &ids, filter, q.len())?.into_values() {
                out.push((hit, f64::from(super::vec::dot(q, &v))));
            }
        }
        Ok(())
    };
    // Twice the limit at first: the exact scores may reorder the
    // quantised ones near the cut. Usually this first batch is enough.
    let first = (limit * 2).max(32);
    check(index.top(q, first).iter().map(|c| c.1).collect(), &mut out)?;
    if out.len() < limit && index.len() > first {
        // A selective scope or filter: walk on through the full ranking.
        let mut ranked = super::vec::Ranked::new(index.scores(q));
        ranked.take(first);
        let mut batch = first.saturating_mul(4);
        while out.len() < limit && !ranked.is_exhausted() {
            let ids = ranked.take(batch).iter().map(|c| c.1).collect();
            check(ids, &mut out)?;
            batch = batch.saturating_mul(4);
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(limit);
    Ok(out)
}

/// Of `rowids`, the rows that are live, carry a current vector and pass
/// `filter`, by rowid, with that vector.
fn check_candidates(
    conn: &Connection,
    rowids: &[i64],
    filter: &RecallFilter,
    dims: usize,
) -> Result<std::collections::HashMap<i64, (Hit, Vec<f32>)>, StoreError> {
    let list = serde_json::to_string(rowids).map_err(|e| StoreError::Task(e.to_string()))?;
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(list)];
    let mut sql = format!(
        "SELECT {HIT_COLUMNS}, 0.0, m.rowid, e.vector FROM memories m
         JOIN memory_embeddings e ON e.memory_rowid = m.rowid AND e.content_hash = m.content_hash
         WHERE m.rowid IN (SELECT value FROM json_each(?)) AND m.is_deleted = 0
           AND m.embedding_model IS NOT NULL"
    );
    filter.push_sql(&mut sql, &mut args);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        let rowid: i64 = r.get(12)?;
        let blob: Vec<u8> = r.get(13)?;
        Ok((
            rowid,
            (
                hit_from_row(r)?,
                super::vec::from_blob(&blob).unwrap_or_default(),
            ),
        ))
    })?;
    Ok(rows
        .collect::<Result<std::collections::HashMap<_, _>, _>>()?
        .into_iter()
        .filter(|(_, (_, v))| v.len() == dims)
        .collect())
}

/// Merge small keyword-index segments for up to `budget`, a bounded step
/// of FTS5's incremental merge. Group commits write one small segment each;
/// merged, a term's doclist sits in few segments and queries read less.
/// Returns whether merge work remains.
pub fn merge_index(conn: &Connection, budget: std::time::Duration) -> Result<bool, StoreError> {
    let started = std::time::Instant::now();
    let mut stmt =
        conn.prepare_cached("INSERT INTO memories_fts(memories_fts, rank) VALUES ('merge', -64)")?;
    loop {
        let before = conn.total_changes();
        stmt.execute([])?;
        // FTS5 reports no (or one) change when there was nothing to merge.
        if conn.total_changes() - before < 2 {
            return Ok(false);
        }
        if started.elapsed() >= budget {
            return Ok(true);
        }
    }
}

/// Distinct non-empty `who` values among live rows in scope.
pub fn distinct_who(conn: &Connection, scope: &Scope) -> Result<Vec<String>, StoreError> {
    let mut sql = String::from("SELECT DISTINCT m.who FROM memories m WHERE m.is_deleted = 0 AND m.who IS NOT NULL AND m.who != ''");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    scope.push_sql("m", &mut sql, &mut args);
    sql.push_str(" ORDER BY m.who");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_is_quoted_and_operators_survive_only_between_terms() {
        assert_eq!(
            fts_query("alpha bravo").as_deref(),
            Some("\"alpha\" \"bravo\"")
        );
        assert_eq!(fts_query("a OR b").as_deref(), Some("\"a\" OR \"b\""));
        assert_eq!(fts_query("OR a NOT").as_deref(), Some("\"a\""));
        assert_eq!(fts_query("a AND OR b").as_deref(), Some("\"a\" OR \"b\""));
        assert_eq!(
            fts_query("say \"hi\"*(").as_deref(),
            Some("\"say\" \"hi*(\"")
        );
        assert_eq!(fts_query("  \"\" ** ( ) "), None);
        assert_eq!(
            fts_query("col:val -x NEAR(a b)").as_deref(),
            Some("\"col:val\" \"-x\" \"NEAR(a\" \"b)\"")
        );
    }

    #[test]
    fn bm25_normalises_against_the_best_raw_score() {
        let n = normalise_bm25(&[-4.0, -2.0, -1.0]);
        assert_eq!(n, vec![1.0, 0.5, 0.25]);
        assert_eq!(normalise_bm25(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn rehearsal_boost_grows_with_access_and_decays_with_time() {
        assert_eq!(rehearsal(0.5, 0, 0.0), 0.5);
        let fresh = rehearsal(0.5, 10, 0.0);
        let old = rehearsal(0.5, 10, 60.0);
        assert!((fresh - 0.5 * (1.0 + 0.1 * 11f64.ln())).abs() < 1e-12);
        assert!((old - 0.5 * (1.0 + 0.1 * 11f64.ln() * 0.25)).abs() < 1e-12);
    }

    fn hit(id: &str, raw: f64) -> Hit {
        Hit {
            id: id.into(),
            content: format!("content {id}"),
            kind: "fact".into(),
            tags: None,
            pinned: false,
            importance: 0.8,
            who: None,
            project: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            access_count: 0,
            last_accessed: None,
            raw,
        }
    }

    #[test]
    fn fusion_weights_vector_by_alpha_and_labels_sources() {
        // Keyword raw -4 and -2 normalise to 1.0 and 0.5.
        let kw = vec![hit("a", -4.0), hit("b", -2.0)];
        let vec = vec![(hit("b", 0.0), 0.9), (hit("c", 0.0), 0.6)];
        let fused = fuse(kw, vec, 0.7);
        let get = |id: &str| fused.iter().find(|c| c.hit.id == id).expect("present");
        assert_eq!(get("a").source, "keyword");
        assert!((get("a").score - 1.0).abs() < 1e-12);
        assert_eq!(get("b").source, "hybrid");
        assert!((get("b").score - (0.7 * 0.9 + 0.3 * 0.5)).abs() < 1e-12);
        assert_eq!(get("c").source, "vector");
        assert!((get("c").score - 0.6).abs() < 1e-12);
        // A non-positive vector score does not make a row hybrid.
        let fused = fuse(vec![hit("d", -1.0)], vec![(hit("d", 0.0), -0.2)], 0.7);
        assert_eq!((fused[0].source, fused[0].score), ("keyword", 1.0));
    }

    #[test]
    fn finish_drops_below_min_score_boosts_rounds_and_sorts() {
        let now = chrono::Utc::now();
        let mut rehearsed = hit("r", 0.0);
        rehearsed.access_count = 10;
        rehearsed.last_accessed = Some(crate::store::to_iso(now));
        let cands = vec![
            Candidate {
                hit: hit("low", 0.0),
                score: 0.09,
                source: "vector",
            },
            Candidate {
                hit: hit("mid", 0.0),
                score: 0.456,
                source: "hybrid",
            },
            Candidate {
                hit: rehearsed,
                score: 0.4,
                source: "keyword",
            },
            Candidate {
                hit: hit("edge", 0.0),
                score: 0.1,
                source: "keyword",
            },
        ];
        let out = finish(cands, 0.1, 10, now);
        let ids: Vec<&str> = out.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["r", "mid", "edge"],
            "0.09 dropped, 0.1 kept, boosted first"
        );
        assert_eq!(out[1].score, 0.46);
        assert_eq!(out[0].score, round2(0.4 * (1.0 + 0.1 * 11f64.ln())));
        assert_eq!(out[0].score, 0.5);
        assert_eq!(out[2].source, "keyword");
        assert_eq!(
            finish(
                vec![Candidate {
                    hit: hit("x", 0.0),
                    score: 0.5,
                    source: "vector"
                }],
                0.1,
                0,
                now
            )
            .len(),
            0
        );
    }

    #[test]
    fn rounding_and_truncation() {
        assert_eq!(round2(0.126), 0.13);
        assert_eq!(round2(0.124), 0.12);
        let long = "é".repeat(600);
        let t = truncate_content(&long);
        assert!(t.ends_with(" [truncated]"));
        assert_eq!(t.chars().count(), 500 + " [truncated]".len());
        assert_eq!(truncate_content("short"), "short");
    }
}
