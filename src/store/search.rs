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

/// Score keyword hits: normalise, boost by rehearsal, drop below
/// `min_score`, round, truncate, best first, at most `limit`.
pub fn score_keyword(hits: Vec<Hit>, min_score: f64, limit: usize) -> Vec<Scored> {
    let now = chrono::Utc::now();
    let raw: Vec<f64> = hits.iter().map(|h| h.raw).collect();
    let norm = normalise_bm25(&raw);
    let mut out: Vec<Scored> = hits
        .into_iter()
        .zip(norm)
        .filter_map(|(h, s)| {
            let boosted = rehearsal(
                s,
                h.access_count,
                days_since(h.last_accessed.as_deref(), now),
            );
            if boosted < min_score {
                return None;
            }
            Some(Scored {
                score: round2(boosted),
                source: "keyword",
                content: truncate_content(&h.content),
                id: h.id,
                kind: h.kind,
                tags: h.tags,
                pinned: h.pinned,
                importance: h.importance,
                who: h.who,
                project: h.project,
                created_at: h.created_at,
            })
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(limit);
    out
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
