//! Keyword search over the FTS5 index, with filters and scope applied
//! inside the query (before the limit), and the scoring rules of recall.

use std::sync::Arc;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::memories::{push_tags_sql, Scope};
use super::postings::{Doclist, Neighbour, Neighbours, Postings};
use super::StoreError;

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
    /// Whether nothing narrows the rows beyond the caller's scope.
    pub fn only_scope(&self) -> bool {
        RecallFilter {
            scope: Scope::default(),
            ..self.clone()
        }
        .is_empty()
    }

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

    /// Append the filter's conditions on alias `m`.
    pub fn push_sql(&self, sql: &mut String, args: &mut Vec<Box<dyn ToSql>>) {
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

/// A memory row as the search legs read it. Shared: a row kept by the
/// doclist cache is handed to every search that finds it without a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub content: String,
    pub kind: String,
    pub tags: Option<String>,
    pub pinned: bool,
    pub importance: f64,
    pub who: Option<String>,
    pub project: Option<String>,
    pub created_at: String,
    pub rowid: i64,
    /// Tokens as the keyword index counts them (runs of letters and
    /// digits in content and who), for the any-term leg's length norm.
    pub tokens: u32,
}

/// Tokens as the keyword index counts them: runs of letters and digits
/// in content and who.
fn token_count(content: &str, who: Option<&str>) -> u32 {
    let count = |s: &str| {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .count()
    };
    u32::try_from(count(content) + who.map_or(0, count)).unwrap_or(u32::MAX)
}

/// A row found by a search leg, before scoring: the shared row and this
/// search's raw score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub row: Arc<Row>,
    /// Raw BM25 (negative: lower is better).
    pub raw: f64,
}

impl std::ops::Deref for Hit {
    type Target = Row;
    fn deref(&self) -> &Row {
        &self.row
    }
}

const HIT_COLUMNS: &str = "m.id, m.content, m.type, m.tags, m.pinned, m.importance, m.who, \
    m.project, m.created_at, m.rowid";

fn hit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hit> {
    let content: String = r.get(1)?;
    let who: Option<String> = r.get(6)?;
    let tokens = token_count(&content, who.as_deref());
    Ok(Hit {
        row: Arc::new(Row {
            id: r.get(0)?,
            content,
            kind: r.get(2)?,
            tags: r.get(3)?,
            pinned: r.get::<_, i64>(4)? != 0,
            importance: r.get(5)?,
            who,
            project: r.get(7)?,
            created_at: r.get(8)?,
            rowid: r.get(9)?,
            tokens,
        }),
        raw: r.get(10)?,
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

/// Rows in the keyword index and their mean length in tokens (both
/// columns), read from FTS5's own totals record (the `averages` row of
/// `memories_fts_data`: varints, the row count then each column's token
/// total), so no pass over the table is needed; counted when that record
/// is absent.
pub fn index_totals(conn: &Connection) -> Result<(i64, f64), StoreError> {
    let block: Option<Vec<u8>> = conn
        .prepare_cached("SELECT block FROM memories_fts_data WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    if let Some(b) = block {
        let mut at = 0;
        let mut vals = Vec::with_capacity(3);
        while vals.len() < 3 {
            let Some((v, used)) = read_varint(&b[at.min(b.len())..]) else {
                break;
            };
            vals.push(v);
            at += used;
        }
        if let [rows, tokens @ ..] = vals.as_slice() {
            let total: u64 = tokens.iter().sum();
            let avg = if *rows > 0 {
                total as f64 / *rows as f64
            } else {
                1.0
            };
            return Ok((*rows as i64, avg.max(1.0)));
        }
    }
    let rows: i64 = conn
        .prepare_cached("SELECT count(*) FROM memories_fts_docsize")?
        .query_row([], |r| r.get(0))?;
    Ok((rows, 8.0))
}

/// SQLite's varint (big-endian 7-bit groups; a ninth byte carries 8
/// bits), with the bytes it took.
fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(9) {
        if i == 8 {
            return Some(((v << 8) | u64::from(*byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// FTS5's inverse document frequency: `ln((N - n + 0.5) / (n + 0.5))`,
/// and a tiny positive weight for a term on half the rows or more.
fn idf(rows: i64, matching: usize) -> f64 {
    let (n, m) = (rows.max(0) as f64, matching as f64);
    let x = ((n - m + 0.5) / (m + 0.5)).ln();
    if x > 0.0 {
        x
    } else {
        1e-6
    }
}

/// The any-term keyword leg: the best `depth` live rows that pass
/// `filter`. Each operand's doclist is read on its own (no per-row ranking
/// function runs over every match: the cost is one pass over each
/// doclist); rows are taken by the summed IDF of the operands they match,
/// ties newest first, checked in SQLite in growing batches (live, scope,
/// filters) until `depth` passed (and up to `2·depth` of a tie at the cut:
/// of a larger tie only the newest are looked at), then scored like BM25
/// with each matched word counted once:
/// `Σ idf · (k1+1) / (1 + k1·(1 − b + b·len/avglen))` (k1 1.2, b 0.75,
/// FTS5's defaults), so among equal matches the shorter, more focused
/// memory ranks first. Also returns the keyword leg's confidence: the
/// largest share of the operands one returned row matches (1 when a row
/// matches them all). `Hit::raw` is the negated score, as with BM25. Rows
/// matching fewer than `min_matched` operands are left out.
pub fn keyword_any(
    conn: &Connection,
    postings: &Postings,
    operands: &[String],
    filter: &RecallFilter,
    depth: usize,
    min_matched: u32,
) -> Result<(Vec<Hit>, f64), StoreError> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    if operands.is_empty() || depth == 0 {
        return Ok((Vec::new(), 0.0));
    }
    let top = super::postings::top(conn)?;
    let (rows, avg_len) = postings.totals(conn, top, index_totals)?;
    let mut by_df: Vec<(usize, &str, Doclist)> = Vec::with_capacity(operands.len());
    for op in operands {
        let list = postings.get_upto(conn, op, top, doc_freq)?;
        by_df.push((list.len(), op.as_str(), list));
    }
    by_df.sort_by_key(|(df, _, _)| *df);
    // Max-score pruning: the rarest operands are read out in full; a
    // common one is only looked up for the rows the rare ones found (one
    // FTS5 AND, which seeks through the long doclist). A row outside that
    // set matches common operands only, so it scores at most the sum of
    // their IDFs: if the cut is above that sum, the answer is exactly the
    // one reading every doclist would give; if not, more operands become
    // "rare" and the leg runs again (at the end: every doclist read).
    let mut want = depth.saturating_mul(4).max(64);
    let mut k = 0;
    let taken = loop {
        let mut pool = by_df[..k].iter().map(|(df, _, _)| *df).sum::<usize>();
        while k < by_df.len() && (k == 0 || pool < want) {
            pool += by_df[k].0;
            k += 1;
        }
        let (rare, common) = by_df.split_at(k);
        let scores = candidate_scores(conn, rare, common, rows)?;
        let bound: f64 = common.iter().map(|(df, _, _)| idf(rows, *df)).sum();
        let taken = take_best(conn, postings, scores, filter, depth, min_matched)?;
        if common.is_empty() || (taken.len() >= depth && taken[depth - 1].1 > bound) {
            break taken;
        }
        want = want.saturating_mul(4).max(pool.saturating_add(1));
    };
    let mut out: Vec<(Hit, f64, u32)> = taken
        .into_iter()
        .map(|(h, idf_sum, n)| {
            let len = f64::from(h.tokens);
            let score = idf_sum * (K1 + 1.0) / (1.0 + K1 * (1.0 - B + B * len / avg_len));
            (h, score, n)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.rowid.cmp(&a.0.rowid)));
    out.truncate(depth);
    let matched_best = out.iter().map(|x| x.2).max().unwrap_or(0);
    let confidence = f64::from(matched_best) / operands.len() as f64;
    Ok((
        out.into_iter()
            .map(|(mut h, score, _)| {
                h.raw = -score;
                h
            })
            .collect(),
        confidence,
    ))
}

/// Rows an operand matches. Counting a doclist costs a fraction of
/// reading it out, but a word on a third of a million rows still takes
/// ~15 ms to count: such counts (≥ `CACHED_FROM`) are kept per store file
/// for a minute, when a few hundred more or fewer rows barely move the
/// word's IDF. Smaller counts are cheap and always exact.
fn doc_freq(conn: &Connection, op: &str) -> Result<usize, StoreError> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    use std::time::{Duration, Instant};
    const CACHED_FROM: usize = 5_000;
    const TTL: Duration = Duration::from_secs(60);
    const MOST: usize = 10_000;
    type Counts = HashMap<(String, String), (usize, Instant)>;
    static COUNTS: LazyLock<Mutex<Counts>> = LazyLock::new(Default::default);
    let key = (conn.path().unwrap_or_default().to_string(), op.to_string());
    if let Ok(c) = COUNTS.lock() {
        if let Some((n, at)) = c.get(&key) {
            if at.elapsed() < TTL {
                return Ok(*n);
            }
        }
    }
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?1")?
        .query_row([op], |r| r.get(0))?;
    let n = usize::try_from(n).unwrap_or(0);
    if n >= CACHED_FROM {
        if let Ok(mut c) = COUNTS.lock() {
            if c.len() >= MOST {
                c.retain(|_, (_, at)| at.elapsed() < TTL);
                if c.len() >= MOST {
                    c.clear();
                }
            }
            c.insert(key, (n, Instant::now()));
        }
    }
    Ok(n)
}

/// A candidate row of the any-term leg: rowid, IDF sum of the operands
/// it matches, how many it matches.
type Scoring = (i64, f64, u32);

/// IDF sums and matched-operand counts of the rows matching any `rare`
/// operand (`(df, expression, doclist)`), the `common` ones counted for
/// those rows only; ascending by rowid. Doclists are sorted rowids, so the
/// rare ones are merged and each common one is walked against the
/// candidates from the smaller side (a seek forward in the larger one):
/// no hashing, and memory is read in order. A doclist in memory is walked;
/// one too long to keep is read from FTS5 (a rare one) or looked up with
/// one FTS5 AND that seeks through it (a common one).
fn candidate_scores(
    conn: &Connection,
    rare: &[(usize, &str, Doclist)],
    common: &[(usize, &str, Doclist)],
    rows: i64,
) -> Result<Vec<Scoring>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1")?;
    let mut read = |expr: &str| -> Result<Vec<i64>, StoreError> {
        let mut ids = stmt
            .query_map([expr], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        // FTS5 returns rowids ascending; sorting a sorted list is one pass.
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    };
    let mut scores: Vec<Scoring> = Vec::new();
    for (df, op, list) in rare {
        let w = idf(rows, *df);
        let long;
        let ids: &[i64] = match list {
            Doclist::Rows(ids) => ids,
            Doclist::Long(_) => {
                long = read(op)?;
                &long
            }
        };
        scores = merge_rare(&scores, ids, w);
    }
    if scores.is_empty() || common.is_empty() {
        return Ok(scores);
    }
    let any_rare = rare
        .iter()
        .map(|(_, op, _)| *op)
        .collect::<Vec<_>>()
        .join(" OR ");
    for (df, op, list) in common {
        let w = idf(rows, *df);
        let long;
        let ids: &[i64] = match list {
            Doclist::Rows(ids) => ids,
            Doclist::Long(_) => {
                long = read(&format!("({any_rare}) AND {op}"))?;
                &long
            }
        };
        credit_common(&mut scores, ids, w);
    }
    Ok(scores)
}

/// `scores` (ascending by rowid) with every row of `ids` (ascending)
/// credited `w` and one more matched operand, new rows added.
fn merge_rare(scores: &[Scoring], ids: &[i64], w: f64) -> Vec<Scoring> {
    let mut out = Vec::with_capacity(scores.len() + ids.len());
    let (mut i, mut j) = (0, 0);
    while i < scores.len() || j < ids.len() {
        match (scores.get(i), ids.get(j)) {
            (Some(s), Some(&id)) if s.0 == id => {
                out.push((id, s.1 + w, s.2 + 1));
                i += 1;
                j += 1;
            }
            (Some(s), Some(&id)) if s.0 < id => {
                out.push(*s);
                i += 1;
            }
            (Some(s), None) => {
                out.push(*s);
                i += 1;
            }
            (_, Some(&id)) => {
                out.push((id, w, 1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Credit `w` and one matched operand to each row of `scores` (ascending
/// by rowid) that `ids` (ascending) holds. The smaller side is walked and
/// each of its rows sought forward in the larger one by galloping, so a
/// short list against a long one costs a few probes a row.
fn credit_common(scores: &mut [Scoring], ids: &[i64], w: f64) {
    /// Index of the first element of `xs[from..]` not less than `key`
    /// (`xs` ascending): doubling steps past it, then a binary search.
    fn seek<T>(xs: &[T], from: usize, key: i64, at: impl Fn(&T) -> i64) -> usize {
        // Everything in `from..lo` is less than `key`; `xs[hi]`, if any,
        // is not.
        let (mut lo, mut hi, mut step) = (from, from, 1);
        while hi < xs.len() && at(&xs[hi]) < key {
            lo = hi + 1;
            hi = from + step;
            step *= 2;
        }
        let hi = hi.min(xs.len());
        lo + xs[lo..hi].partition_point(|x| at(x) < key)
    }
    if ids.len() <= scores.len() {
        let mut at = 0;
        for &id in ids {
            at = seek(&*scores, at, id, |s| s.0);
            match scores.get_mut(at) {
                Some(s) if s.0 == id => {
                    s.1 += w;
                    s.2 += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
    } else {
        let mut at = 0;
        for s in scores.iter_mut() {
            at = seek(ids, at, s.0, |&x| x);
            match ids.get(at) {
                Some(&x) if x == s.0 => {
                    s.1 += w;
                    s.2 += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
    }
}

/// The best `depth` rows of `scores` (IDF sum, ties newest first) that
/// pass `filter` and match at least `min_matched` operands, checked in
/// SQLite in growing batches, with up to `2·depth` of a tie at the cut;
/// best first, with their IDF sums and matched counts.
fn take_best(
    conn: &Connection,
    postings: &Postings,
    scores: Vec<Scoring>,
    filter: &RecallFilter,
    depth: usize,
    min_matched: u32,
) -> Result<Vec<(Hit, f64, u32)>, StoreError> {
    let mut ranked = scores;
    ranked.retain(|(_, _, n)| *n >= min_matched);
    // Best first; only the prefix the cut reads is ever sorted (a common
    // word matches thousands of rows, the cut needs a few dozen).
    let order = |a: &Scoring, b: &Scoring| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0));
    let mut sorted = 0usize;
    let mut sort_upto = |ranked: &mut Vec<Scoring>, upto: usize| {
        let upto = upto.min(ranked.len());
        if upto > sorted {
            let tail = &mut ranked[sorted..];
            if upto - sorted < tail.len() {
                tail.select_nth_unstable_by(upto - sorted, order);
            }
            ranked[sorted..upto].sort_unstable_by(order);
            sorted = upto;
        }
    };
    // A selective filter never loses results to the cut; a large tie at
    // the cut is bounded.
    let most = depth.saturating_mul(2);
    let mut taken: Vec<(Hit, f64, u32)> = Vec::with_capacity(depth);
    let mut next = 0;
    let mut batch = depth.saturating_mul(2).max(32);
    while next < ranked.len() && taken.len() < most {
        if taken.len() >= depth {
            sort_upto(&mut ranked, next + 1);
            if ranked[next].1 < taken[depth - 1].1 {
                break;
            }
            // Completing a tie at the cut: no more than the bound.
            batch = batch.min(most - taken.len());
        }
        let end = (next + batch).min(ranked.len());
        sort_upto(&mut ranked, end);
        let part = &ranked[next..end];
        let ids: Vec<i64> = part.iter().map(|c| c.0).collect();
        let mut found: rustc_hash::FxHashMap<i64, Hit> =
            hits_by_rowid(conn, &ids, filter, Some(postings))?
                .into_iter()
                .map(|h| (h.rowid, h))
                .collect();
        for &(rowid, score, n) in part {
            if let Some(h) = found.remove(&rowid) {
                taken.push((h, score, n));
            }
        }
        next = end;
        batch = batch.saturating_mul(4);
    }
    Ok(taken)
}

/// One scored recall result, as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scored {
    pub id: String,
    pub content: String,
    /// Full precision; on the wire two decimals, at most 1.
    #[serde(serialize_with = "serialize_round2")]
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

/// Scores go out rounded to two decimals and capped at 1 (neighbour
/// context and speaker awareness can lift a rank past the best fused
/// score; the order is still decided on the full value).
fn serialize_round2<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round2(x.min(1.0)))
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

/// A candidate after fusion, before the cut and rounding.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub hit: Hit,
    pub score: f64,
    pub source: &'static str,
}

/// Best cosine at or under which the vector leg counts for nothing.
pub const VECTOR_FLOOR: f64 = 0.10;
/// Best cosine from which the vector leg counts fully.
pub const VECTOR_FULL: f64 = 0.25;

/// How recall ranks (the `search:` settings; the defaults and why are in
/// `docs/architecture.md`, "Recall").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranking {
    /// Weight of the vector leg when both legs found candidates.
    pub alpha: f64,
    /// Candidates each leg contributes (at least the request's limit).
    pub depth: usize,
    /// Share of its best neighbour's score a memory gains (neighbours: the
    /// memories stored just before and after it in the same project,
    /// within `neighbour_window` of it).
    pub neighbour_weight: f64,
    pub neighbour_window: chrono::Duration,
    /// Extra share of score for a memory whose `who` the query names.
    pub who_boost: f64,
    pub min_score: f64,
}

/// Min-max scale one leg's scores (higher is better) to [0, 1]. When the
/// leg returned fewer than `depth` rows, every other row scored nothing,
/// so the floor is 0 rather than the weakest candidate (a weak match is
/// not dropped just because it is the last of few).
fn min_max(xs: &[f64], depth: usize) -> Vec<f64> {
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    if xs.len() < depth {
        lo = lo.min(0.0);
    }
    xs.iter()
        .map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 1.0 })
        .collect()
}

/// Fuse the two legs. Each leg is min-max scaled over its own candidates
/// (keyword: its score, `-raw`; vector: cosine similarity); a row gets
/// `alpha·vec + (1-alpha)·conf·kw`, a leg it is missing from counting 0,
/// where `conf` is the keyword leg's confidence (the best row's share of
/// the query's words: a question that shares one common word with a
/// memory does not let that memory outrank what the vector leg found).
/// When only one leg found anything, its scaled score is the score. The
/// vector leg is scaled by its own confidence (its best cosine between
/// `VECTOR_FLOOR` and `VECTOR_FULL`), so a question nothing is related to
/// scores low and `min_score` drops it. Source: `hybrid` for a row both
/// legs found, else the leg that found it.
pub fn fuse(
    keyword: Vec<Hit>,
    keyword_confidence: f64,
    vector: Vec<(Hit, f64)>,
    r: &Ranking,
) -> Vec<Candidate> {
    let (wv, wk) = match (keyword.is_empty(), vector.is_empty()) {
        (false, false) => (
            r.alpha,
            (1.0 - r.alpha) * keyword_confidence.clamp(0.0, 1.0),
        ),
        (true, _) => (1.0, 0.0),
        (false, true) => (0.0, 1.0),
    };
    let kw_scores = min_max(&keyword.iter().map(|h| -h.raw).collect::<Vec<_>>(), r.depth);
    // The vector leg's confidence: min-max would scale the best of
    // unrelated memories to 1; a best cosine at or under `VECTOR_FLOOR`
    // means nothing in reach is related (unrelated texts score ~0–0.1 with
    // MiniLM; the dev set's best answers 0.34+, the paraphrase fixture's
    // 0.29+), so the leg counts for nothing there and fully from
    // `VECTOR_FULL` on.
    let best_cos = vector.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
    let vector_confidence =
        ((best_cos - VECTOR_FLOOR) / (VECTOR_FULL - VECTOR_FLOOR)).clamp(0.0, 1.0);
    let vec_scores: Vec<f64> = min_max(&vector.iter().map(|v| v.1).collect::<Vec<_>>(), r.depth)
        .into_iter()
        .map(|v| v * vector_confidence)
        .collect();
    let mut out: Vec<Candidate> = Vec::with_capacity(keyword.len() + vector.len());
    let mut at: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(keyword.len() + vector.len());
    for (hit, k) in keyword.into_iter().zip(kw_scores) {
        at.insert(hit.id.clone(), out.len());
        out.push(Candidate {
            hit,
            score: wk * k,
            source: "keyword",
        });
    }
    for ((hit, _), v) in vector.into_iter().zip(vec_scores) {
        match at.get(&hit.id) {
            Some(&i) => {
                out[i].score += wv * v;
                out[i].source = "hybrid";
            }
            None => out.push(Candidate {
                hit,
                score: wv * v,
                source: "vector",
            }),
        }
    }
    out
}

/// Lower-cased, trimmed `who`; `None` when unset or blank.
fn speaker(who: Option<&str>) -> Option<String> {
    who.map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
}

/// Whether two memories are each other's context: a dialogue (two
/// different speakers) stored within `window` of each other.
fn in_dialogue(a: (Option<&str>, &str), b: (Option<&str>, &str), window: chrono::Duration) -> bool {
    let speakers = matches!((speaker(a.0), speaker(b.0)), (Some(x), Some(y)) if x != y);
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let near = matches!((at(a.1), at(b.1)), (Some(x), Some(y)) if (x - y).abs() <= window);
    speakers && near
}

/// For each of `hits`, the rowids of the live memories stored just before
/// and after it in its project, each only when it forms a dialogue with the
/// hit (another speaker, within `window`). One statement for those `cache`
/// does not hold (a project's order changes only by a rewrite, or by an
/// insert after its last row).
pub fn adjacent(
    conn: &Connection,
    hits: &[&Hit],
    window: chrono::Duration,
    cache: Option<&Postings>,
) -> Result<Vec<[Option<i64>; 2]>, StoreError> {
    let mut out = vec![[None, None]; hits.len()];
    let asked: Vec<usize> = (0..hits.len())
        .filter(|&i| speaker(hits[i].who.as_deref()).is_some())
        .collect();
    if asked.is_empty() {
        return Ok(out);
    }
    let rowids: Vec<i64> = asked.iter().map(|&i| hits[i].rowid).collect();
    // The counter, then the top, then the read (see `postings`).
    let rewrites = cache.map(Postings::rewrites);
    let top = super::postings::top(conn)?;
    let mut known: Vec<Option<Arc<Neighbours>>> = match (cache, rewrites) {
        (Some(c), Some(r)) => c
            .neighbours(&rowids, r)
            .into_iter()
            .map(|n| n.filter(|n| n.current(top)))
            .collect(),
        _ => vec![None; rowids.len()],
    };
    let missing: Vec<i64> = rowids
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(r, _)| *r)
        .collect();
    if !missing.is_empty() {
        let mut read: rustc_hash::FxHashMap<i64, Arc<Neighbours>> = missing
            .iter()
            .map(|r| {
                (
                    *r,
                    Arc::new(Neighbours {
                        sides: [None, None],
                        top,
                    }),
                )
            })
            .collect();
        let list = serde_json::to_string(&missing).map_err(|e| StoreError::Task(e.to_string()))?;
        let mut stmt = conn.prepare_cached(
            "SELECT c.rowid, 0, n.rowid, n.who, n.created_at FROM json_each(?1) j
               JOIN memories c ON c.rowid = j.value
               JOIN memories n ON n.rowid =
                 (SELECT MAX(rowid) FROM memories WHERE project IS c.project AND rowid < c.rowid AND is_deleted = 0)
             UNION ALL
             SELECT c.rowid, 1, n.rowid, n.who, n.created_at FROM json_each(?1) j
               JOIN memories c ON c.rowid = j.value
               JOIN memories n ON n.rowid =
                 (SELECT MIN(rowid) FROM memories WHERE project IS c.project AND rowid > c.rowid AND is_deleted = 0)",
        )?;
        let rows = stmt.query_map([list], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                Neighbour {
                    rowid: r.get(2)?,
                    who: r.get(3)?,
                    created_at: r.get(4)?,
                },
            ))
        })?;
        for row in rows {
            let (of, side, n) = row?;
            if let Some(e) = read.get_mut(&of) {
                Arc::make_mut(e).sides[side as usize & 1] = Some(n);
            }
        }
        for (r, k) in rowids.iter().zip(known.iter_mut()) {
            if k.is_none() {
                *k = read.get(r).cloned();
            }
        }
        if let (Some(c), Some(at)) = (cache, rewrites) {
            c.file_neighbours(read.into_iter().collect(), at);
        }
    }
    for (&i, k) in asked.iter().zip(&known) {
        let Some(k) = k else { continue };
        let hit = hits[i];
        for (side, n) in k.sides.iter().enumerate() {
            if let Some(n) = n {
                if in_dialogue(
                    (hit.who.as_deref(), &hit.created_at),
                    (n.who.as_deref(), &n.created_at),
                    window,
                ) {
                    out[i][side] = Some(n.rowid);
                }
            }
        }
    }
    Ok(out)
}

/// `hits` found in an earlier read, as they are now: rows deleted or moved
/// out of `filter` since are dropped, content is current; order and scores
/// are kept.
pub fn still_live(
    conn: &Connection,
    hits: Vec<Hit>,
    filter: &RecallFilter,
    cache: Option<&Postings>,
) -> Result<Vec<Hit>, StoreError> {
    let ids: Vec<i64> = hits.iter().map(|h| h.rowid).collect();
    let mut now: rustc_hash::FxHashMap<i64, Hit> = hits_by_rowid(conn, &ids, filter, cache)?
        .into_iter()
        .map(|h| (h.rowid, h))
        .collect();
    Ok(hits
        .into_iter()
        .filter_map(|h| {
            now.remove(&h.rowid).map(|mut fresh| {
                fresh.raw = h.raw;
                fresh
            })
        })
        .collect())
}

/// Of `rowids`, the live rows that pass `filter`, as hits, in rowid
/// order. Without a filter, rows kept in `cache` are not read again.
pub fn hits_by_rowid(
    conn: &Connection,
    rowids: &[i64],
    filter: &RecallFilter,
    cache: Option<&Postings>,
) -> Result<Vec<Hit>, StoreError> {
    if rowids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(cache) = cache.filter(|_| filter.is_empty()) else {
        return read_hits(conn, rowids, filter);
    };
    let (mut kept, missing, rewrites) = cache.rows(rowids);
    if !missing.is_empty() {
        let read = read_hits(conn, &missing, filter)?;
        cache.file_rows(&read, rewrites);
        kept.extend(read);
    }
    kept.sort_unstable_by_key(|h| h.rowid);
    Ok(kept)
}

fn read_hits(
    conn: &Connection,
    rowids: &[i64],
    filter: &RecallFilter,
) -> Result<Vec<Hit>, StoreError> {
    let list = serde_json::to_string(rowids).map_err(|e| StoreError::Task(e.to_string()))?;
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(list)];
    let mut sql = format!(
        "SELECT {HIT_COLUMNS}, 0.0 FROM memories m
         WHERE m.rowid IN (SELECT value FROM json_each(?)) AND m.is_deleted = 0"
    );
    filter.push_sql(&mut sql, &mut args);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), hit_from_row)?;
    let mut hits: Vec<Hit> = rows.collect::<Result<_, _>>()?;
    hits.sort_unstable_by_key(|h| h.rowid);
    Ok(hits)
}

/// Neighbour context: each candidate, and each neighbour of a candidate
/// (the memory stored just before or after it in the same project by
/// another `who`, within `window` of it, in scope and passing the filter),
/// gains `weight` times the better of its two neighbours' fused scores. A
/// short reply ("Yes, last week!") is found through the turn it answers. A
/// neighbour that was no candidate is labelled with the source of the
/// candidate that brought it.
pub fn add_neighbours(
    conn: &Connection,
    cache: Option<&Postings>,
    candidates: Vec<Candidate>,
    filter: &RecallFilter,
    weight: f64,
    window: chrono::Duration,
) -> Result<Vec<Candidate>, StoreError> {
    if weight <= 0.0 || candidates.is_empty() {
        return Ok(candidates);
    }
    let mut by_rowid: rustc_hash::FxHashMap<i64, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hit.rowid, i))
        .collect();
    let hits: Vec<&Hit> = candidates.iter().map(|c| &c.hit).collect();
    let mut adj = adjacent(conn, &hits, window, cache)?;
    let missing: Vec<i64> = adj
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|r| !by_rowid.contains_key(r))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = candidates.len();
    let mut all = candidates;
    for hit in hits_by_rowid(conn, &missing, filter, cache)? {
        by_rowid.insert(hit.rowid, all.len());
        // Its own neighbours matter only where they are candidates, and a
        // candidate next to it already names it: no lookup needed.
        let mut a = [None, None];
        for (c, [prev, next]) in all.iter().zip(&adj).take(found) {
            if *next == Some(hit.rowid) {
                a[0] = Some(c.hit.rowid);
            }
            if *prev == Some(hit.rowid) {
                a[1] = Some(c.hit.rowid);
            }
        }
        adj.push(a);
        all.push(Candidate {
            hit,
            score: 0.0,
            source: "keyword",
        });
    }
    let base: Vec<f64> = all.iter().map(|c| c.score).collect();
    let sources: Vec<&'static str> = all.iter().map(|c| c.source).collect();
    for (i, c) in all.iter_mut().enumerate() {
        let best = adj[i]
            .iter()
            .flatten()
            .filter_map(|r| by_rowid.get(r).copied())
            .max_by(|&a, &b| base[a].total_cmp(&base[b]));
        if let Some(j) = best {
            c.score += weight * base[j];
            if i >= found {
                c.source = sources[j];
            }
        }
    }
    Ok(all)
}

/// Speaker awareness: a memory whose `who` the query names (every word of
/// it, any case) gains `boost` times its score.
pub fn boost_named(candidates: &mut [Candidate], query: &str, boost: f64) {
    if boost <= 0.0 {
        return;
    }
    let words: std::collections::HashSet<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    for c in candidates {
        let Some(who) = c.hit.who.as_deref() else {
            continue;
        };
        let mut parts = who
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .peekable();
        if parts.peek().is_some() && parts.all(|w| words.contains(&w.to_lowercase())) {
            c.score *= 1.0 + boost;
        }
    }
}

/// The whole ranking of one recall over the two legs' candidates: fusion,
/// neighbour context, speaker awareness, then the cut.
#[allow(clippy::too_many_arguments)]
pub fn rank(
    conn: &Connection,
    cache: Option<&Postings>,
    keyword: Vec<Hit>,
    keyword_confidence: f64,
    vector: Vec<(Hit, f64)>,
    filter: &RecallFilter,
    query: &str,
    ranking: &Ranking,
    limit: usize,
) -> Result<Vec<Scored>, StoreError> {
    let fused = fuse(keyword, keyword_confidence, vector, ranking);
    let mut all = add_neighbours(
        conn,
        cache,
        fused,
        filter,
        ranking.neighbour_weight,
        ranking.neighbour_window,
    )?;
    boost_named(&mut all, query, ranking.who_boost);
    Ok(finish(all, ranking.min_score, limit))
}

/// Finish fused candidates: drop below `min_score`, best first on full
/// precision (ties: newer first, then by id, so the order is the same on
/// every call), truncate long content, at most `limit`. Usage (access
/// counts) plays no part: a memory returned before does not rank higher.
pub fn finish(candidates: Vec<Candidate>, min_score: f64, limit: usize) -> Vec<Scored> {
    let mut kept: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| c.score >= min_score)
        .collect();
    kept.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.hit.created_at.cmp(&a.hit.created_at))
            .then_with(|| a.hit.id.cmp(&b.hit.id))
    });
    kept.truncate(limit);
    kept.into_iter()
        .map(|c| {
            let h = &c.hit;
            Scored {
                score: c.score,
                source: c.source,
                content: truncate_content(&h.content),
                id: h.id.clone(),
                kind: h.kind.clone(),
                tags: h.tags.clone(),
                pinned: h.pinned,
                importance: h.importance,
                who: h.who.clone(),
                project: h.project.clone(),
                created_at: h.created_at.clone(),
            }
        })
        .collect()
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
    let mut n = (limit * 2).max(32);
    let mut checked: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let fresh = |ids: &[(f32, i64)], checked: &mut std::collections::HashSet<i64>| -> Vec<i64> {
        ids.iter()
            .map(|c| c.1)
            .filter(|r| checked.insert(*r))
            .collect()
    };
    if !index.is_complete() {
        // The daemon is still loading the index: ask vec0 (exact, slower).
        loop {
            let got = super::vec::knn(conn, q, n)?;
            let all = got.len() < n || n >= super::vec::KNN_MAX;
            check(fresh(&got, &mut checked), &mut out)?;
            if out.len() >= limit || all {
                break;
            }
            n = n.saturating_mul(4).min(super::vec::KNN_MAX);
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.rowid.cmp(&b.0.rowid)));
        out.truncate(limit);
        return Ok(out);
    }
    check(fresh(&index.top(q, n), &mut checked), &mut out)?;
    // A selective scope or filter: ask a large index for four times more
    // while its two-stage search stays cheap, then walk the full ranking.
    while out.len() < limit && index.len() > n && index.prefilters(n * 4) {
        n *= 4;
        check(fresh(&index.top(q, n), &mut checked), &mut out)?;
    }
    if out.len() < limit && index.len() > n {
        let mut ranked = super::vec::Ranked::new(index.scores(q));
        let mut batch = n.saturating_mul(4);
        while out.len() < limit && !ranked.is_exhausted() {
            let ids = fresh(ranked.take(batch), &mut checked);
            check(ids, &mut out)?;
            batch = batch.saturating_mul(4);
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.rowid.cmp(&b.0.rowid)));
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
        "SELECT {HIT_COLUMNS}, 0.0, e.vector FROM memories m
         JOIN memory_embeddings e ON e.memory_rowid = m.rowid AND e.content_hash = m.content_hash
         WHERE m.rowid IN (SELECT value FROM json_each(?)) AND m.is_deleted = 0
           AND m.embedding_model IS NOT NULL"
    );
    filter.push_sql(&mut sql, &mut args);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        let hit = hit_from_row(r)?;
        let blob: Vec<u8> = r.get(11)?;
        Ok((
            hit.rowid,
            (hit, super::vec::from_blob(&blob).unwrap_or_default()),
        ))
    })?;
    Ok(rows
        .collect::<Result<std::collections::HashMap<_, _>, _>>()?
        .into_iter()
        .filter(|(_, (_, v))| v.len() == dims)
        .collect())
}

/// Merge keyword-index segments for up to `budget`, bounded steps of
/// FTS5's incremental merge. Group commits write one small segment each;
/// merged, a term's doclist sits in few segments and queries read less.
/// `full` merges every segment into one (FTS5's `'merge'` with a negative
/// page count); otherwise only levels holding several segments are merged
/// (a positive count), and a large segment is left alone. A full merge
/// rewrites the whole index (14k pages, ~1.2 s at 1M memories), so it is
/// worth it only once enough new rows came in: see [`full_merge_due`].
/// Returns whether merge work remains.
pub fn merge_index(
    conn: &Connection,
    budget: std::time::Duration,
    full: bool,
) -> Result<bool, StoreError> {
    let started = std::time::Instant::now();
    let sql = if full {
        "INSERT INTO memories_fts(memories_fts, rank) VALUES ('merge', -64)"
    } else {
        "INSERT INTO memories_fts(memories_fts, rank) VALUES ('merge', 64)"
    };
    let mut stmt = conn.prepare_cached(sql)?;
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

/// New rows per live row past which a full merge of the keyword index is
/// due: 1 in [`FULL_MERGE_SHARE`].
pub const FULL_MERGE_SHARE: u64 = 8;

/// Whether `since` rows written since the last full merge make another one
/// worth its cost: at least one [`FULL_MERGE_SHARE`]th of the live rows
/// (so each row is rewritten a bounded number of times however large the
/// store; before, every idle moment after a write rewrote the whole index).
pub fn full_merge_due(conn: &Connection, since: u64) -> Result<bool, StoreError> {
    let live: i64 = conn.query_row(
        "SELECT COALESCE(SUM(live), 0) FROM memory_counts",
        [],
        |r| r.get(0),
    )?;
    Ok(since > 0 && since.saturating_mul(FULL_MERGE_SHARE) >= live.max(0) as u64)
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
    fn the_vector_leg_asks_vec0_until_the_index_is_loaded() {
        use crate::store::vec::{NewVector, VectorIndex};
        let dir = tempfile::tempdir().expect("tmp");
        let c = crate::store::open_writer(&dir.path().join("t.db"), 4).expect("open");
        let rows: [(&str, [f32; 4]); 4] = [
            ("east", [1.0, 0.0, 0.0, 0.0]),
            ("north-east", [0.8, 0.6, 0.0, 0.0]),
            ("north", [0.0, 1.0, 0.0, 0.0]),
            ("west", [-1.0, 0.0, 0.0, 0.0]),
        ];
        for (id, _) in &rows {
            crate::store::memories::insert_bare(&c, id);
        }
        let items: Vec<NewVector> = rows
            .iter()
            .map(|(id, v)| NewVector {
                memory_id: id.to_string(),
                content_hash: id.to_string(),
                vector: v.to_vec(),
            })
            .collect();
        crate::store::vec::store(&c, &items, "m", 4, "t").expect("vectors");
        let q = [0.9_f32, 0.1, 0.0, 0.0];
        let q: Vec<f32> = q.iter().map(|x| x / (0.82_f32).sqrt()).collect();
        let ids = |hits: &[(Hit, f64)]| hits.iter().map(|h| h.0.id.clone()).collect::<Vec<_>>();

        let index = VectorIndex::new(4);
        index.begin_loading();
        let early = vector(&c, &index, &q, &RecallFilter::default(), 2, None).expect("vec0");
        assert_eq!(ids(&early), vec!["east", "north-east"], "answered by vec0");
        assert!(index.is_empty() && !index.is_complete());

        assert_eq!(index.fill(&c).expect("fill"), 4);
        assert!(index.is_complete());
        let loaded = vector(&c, &index, &q, &RecallFilter::default(), 2, None).expect("index");
        assert_eq!(ids(&loaded), ids(&early));
        for (a, b) in early.iter().zip(&loaded) {
            assert!((a.1 - b.1).abs() < 1e-6, "exact scores either way");
        }
    }

    #[test]
    fn a_full_index_merge_waits_for_enough_new_rows_and_a_partial_one_leaves_a_large_segment() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = crate::store::open_writer(&dir.path().join("t.db"), 4).expect("open");
        // 400 rows in one commit: one segment.
        c.execute_batch("BEGIN").expect("begin");
        for i in 0..400 {
            crate::store::memories::insert_bare(&c, &format!("row {i} alpha beta"));
        }
        c.execute_batch("COMMIT").expect("commit");
        // Then one row in its own commit: a second, small segment.
        crate::store::memories::insert_bare(&c, "one more gamma");
        assert!(!full_merge_due(&c, 0).expect("due"), "nothing new");
        assert!(
            !full_merge_due(&c, 50).expect("due"),
            "50 of 401 is under 1 in 8"
        );
        assert!(full_merge_due(&c, 51).expect("due"), "51 of 401 is 1 in 8");
        let budget = std::time::Duration::from_secs(5);
        // A partial merge leaves the two segments as they are (two are too
        // few to merge a level); a full one merges them, rewriting the
        // large one too.
        let before = c.total_changes();
        assert!(!merge_index(&c, budget, false).expect("partial"));
        assert!(c.total_changes() - before < 2, "the partial merge wrote");
        let before = c.total_changes();
        assert!(!merge_index(&c, budget, true).expect("full"));
        assert!(
            c.total_changes() - before >= 2,
            "the full merge did not write"
        );
        let hits: i64 = c
            .query_row(
                "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'alpha OR gamma'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(hits, 401, "every row still found after the merges");
    }

    #[test]
    fn bm25_normalises_against_the_best_raw_score() {
        let n = normalise_bm25(&[-4.0, -2.0, -1.0]);
        assert_eq!(n, vec![1.0, 0.5, 0.25]);
        assert_eq!(normalise_bm25(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    fn hit(id: &str, raw: f64) -> Hit {
        let content = format!("content {id}");
        Hit {
            row: Arc::new(Row {
                id: id.into(),
                tokens: token_count(&content, None),
                content,
                kind: "fact".into(),
                tags: None,
                pinned: false,
                importance: 0.8,
                who: None,
                project: None,
                created_at: "2026-01-01T00:00:00.000Z".into(),
                rowid: 0,
            }),
            raw,
        }
    }

    fn ranking(alpha: f64, depth: usize) -> Ranking {
        Ranking {
            alpha,
            depth,
            neighbour_weight: 0.0,
            neighbour_window: chrono::Duration::minutes(30),
            who_boost: 0.0,
            min_score: 0.1,
        }
    }

    #[test]
    fn legs_are_min_max_scaled_and_weighted_by_alpha() {
        // Keyword -bm25 4, 2, 1 (depth 3: the weakest is the floor);
        // vector cosines 0.9, 0.6, 0.3.
        let kw = vec![hit("a", -4.0), hit("b", -2.0), hit("c", -1.0)];
        let vec = vec![
            (hit("b", 0.0), 0.9),
            (hit("d", 0.0), 0.6),
            (hit("e", 0.0), 0.3),
        ];
        let fused = fuse(kw, 1.0, vec, &ranking(0.3, 3));
        let get = |id: &str| fused.iter().find(|c| c.hit.id == id).expect("present");
        assert_eq!(get("a").source, "keyword");
        assert!((get("a").score - 0.7).abs() < 1e-12);
        assert_eq!(get("b").source, "hybrid");
        assert!((get("b").score - (0.3 * 1.0 + 0.7 * (1.0 / 3.0))).abs() < 1e-12);
        assert_eq!(
            get("c").score,
            0.0,
            "the weakest of a full leg is its floor"
        );
        assert_eq!(get("d").source, "vector");
        assert!((get("d").score - 0.3 * 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_short_leg_keeps_its_weak_matches_and_a_lone_leg_has_full_weight() {
        // Two keyword matches, fewer than the depth: the floor is 0, so
        // the weaker keeps half; no vector leg: the keyword leg is all.
        let fused = fuse(
            vec![hit("a", -4.0), hit("b", -2.0)],
            0.5,
            Vec::new(),
            &ranking(0.3, 20),
        );
        assert_eq!(fused[0].score, 1.0);
        assert!((fused[1].score - 0.5).abs() < 1e-12);
        let fused = fuse(
            Vec::new(),
            0.0,
            vec![(hit("v", 0.0), 0.4)],
            &ranking(0.3, 20),
        );
        assert_eq!((fused[0].score, fused[0].source), (1.0, "vector"));
    }

    #[test]
    fn a_vector_leg_of_unrelated_memories_counts_for_nothing() {
        let far = vec![(hit("a", 0.0), 0.08), (hit("b", 0.0), 0.02)];
        let fused = fuse(Vec::new(), 0.0, far, &ranking(0.25, 20));
        assert!(fused.iter().all(|c| c.score == 0.0), "{fused:?}");
        let near = vec![(hit("a", 0.0), 0.175), (hit("b", 0.0), 0.0)];
        let fused = fuse(Vec::new(), 0.0, near, &ranking(0.25, 20));
        assert!((fused[0].score - 0.5).abs() < 1e-12, "half way: {fused:?}");
        let related = vec![(hit("a", 0.0), 0.4)];
        let fused = fuse(Vec::new(), 0.0, related, &ranking(0.25, 20));
        assert_eq!(fused[0].score, 1.0);
    }

    #[test]
    fn the_keyword_confidence_scales_the_keyword_leg_when_both_legs_ran() {
        let kw = vec![hit("k", -3.0)];
        let vec = vec![(hit("v", 0.0), 0.5)];
        let fused = fuse(kw, 0.2, vec, &ranking(0.25, 20));
        let get = |id: &str| fused.iter().find(|c| c.hit.id == id).expect("present");
        assert!((get("k").score - 0.75 * 0.2).abs() < 1e-12);
        assert!((get("v").score - 0.25).abs() < 1e-12);
    }

    proptest::proptest! {
        /// The sorted merge of the any-term leg counts each row exactly as
        /// a map from rowid to (IDF sum, operands matched) does.
        #[test]
        fn merged_doclists_score_like_a_map(
            rare in proptest::collection::vec(proptest::collection::btree_set(0i64..400, 0..120), 1..4),
            common in proptest::collection::vec(proptest::collection::btree_set(0i64..400, 0..300), 0..3),
        ) {
            let mut want: std::collections::BTreeMap<i64, (f64, u32)> = Default::default();
            let mut got: Vec<Scoring> = Vec::new();
            for (k, ids) in rare.iter().enumerate() {
                let w = 1.0 + k as f64;
                for id in ids {
                    let e = want.entry(*id).or_insert((0.0, 0));
                    e.0 += w;
                    e.1 += 1;
                }
                got = merge_rare(&got, &ids.iter().copied().collect::<Vec<_>>(), w);
            }
            for (k, ids) in common.iter().enumerate() {
                let w = 0.25 + k as f64;
                for id in ids {
                    if let Some(e) = want.get_mut(id) {
                        e.0 += w;
                        e.1 += 1;
                    }
                }
                credit_common(&mut got, &ids.iter().copied().collect::<Vec<_>>(), w);
            }
            let want: Vec<Scoring> = want.into_iter().map(|(r, (s, n))| (r, s, n)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn varints_decode_like_sqlite() {
        assert_eq!(read_varint(&[0x05, 0x01]), Some((5, 1)));
        assert_eq!(read_varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(read_varint(&[0xff, 0x7f]), Some((16383, 2)));
        assert_eq!(read_varint(&[0x81, 0x80]), None, "cut short");
        assert_eq!(read_varint(&[0xff; 9]), Some((u64::MAX, 9)));
    }

    #[test]
    fn indexed_rows_and_the_any_term_leg_agree_with_the_index() {
        let c = Connection::open_in_memory().expect("db");
        crate::store::register_vec_extension();
        c.execute_batch(
            "CREATE TABLE memories(id TEXT, content TEXT, type TEXT, tags TEXT, pinned INTEGER,
               importance REAL, who TEXT, project TEXT, agent TEXT, user TEXT, created_at TEXT,
               is_deleted INTEGER);
             CREATE VIRTUAL TABLE memories_fts USING fts5(content, who, content='memories',
               content_rowid='rowid', tokenize='porter unicode61');",
        )
        .expect("schema");
        let rows = [
            ("a", "the heron nests by the river", "ann"),
            ("b", "a heron and a crane", "bob"),
            ("c", "river boats at dusk", "ann"),
            ("d", "nothing in common", "bob"),
        ];
        for (i, (id, content, who)) in rows.iter().enumerate() {
            c.execute(
                "INSERT INTO memories(rowid, id, content, type, pinned, importance, who, created_at, is_deleted)
                 VALUES (?1, ?2, ?3, 'fact', 0, 0.5, ?4, '2026-01-01T00:00:00.000Z', 0)",
                rusqlite::params![i as i64 + 1, id, content, who],
            )
            .expect("row");
            c.execute(
                "INSERT INTO memories_fts(rowid, content, who) VALUES (?1, ?2, ?3)",
                rusqlite::params![i as i64 + 1, content, who],
            )
            .expect("fts");
        }
        let (rows, avg) = index_totals(&c).expect("totals");
        assert_eq!(rows, 4);
        assert!(
            (avg - 22.0 / 4.0).abs() < 1e-9,
            "tokens of both columns: {avg}"
        );
        // One cache for every call, as the daemon keeps it.
        let postings = Postings::new(Default::default());
        let leg = |ops: &[String], filter: &RecallFilter, min: u32| {
            keyword_any(&c, &postings, ops, filter, 10, min).expect("leg")
        };
        let ops = vec!["\"heron\"".to_string(), "\"river\"".to_string()];
        let (hits, conf) = leg(&ops, &RecallFilter::default(), 1);
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        // Both words beat one; between one-word matches the shorter first.
        assert_eq!(ids, vec!["a", "c", "b"]);
        assert_eq!(conf, 1.0);
        let ops = vec!["\"crane\"".to_string(), "\"galaxy\"".to_string()];
        let (hits, conf) = leg(&ops, &RecallFilter::default(), 1);
        assert_eq!(hits.len(), 1);
        assert_eq!(conf, 0.5, "the best row matches half the words");
        let only_ann = RecallFilter {
            who: Some("ann".into()),
            ..RecallFilter::default()
        };
        let ops = vec!["\"heron\"".to_string()];
        let (hits, _) = leg(&ops, &only_ann, 1);
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        // Asked for two matched words, a one-word match is left out.
        let ops = vec!["\"heron\"".to_string(), "\"river\"".to_string()];
        let (hits, _) = leg(&ops, &RecallFilter::default(), 2);
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
    }

    #[test]
    fn a_named_speaker_is_boosted() {
        let mut a = hit("a", 0.0);
        Arc::make_mut(&mut a.row).who = Some("Caroline".into());
        let mut b = hit("b", 0.0);
        Arc::make_mut(&mut b.row).who = Some("Mel Gibson".into());
        let mut c = hit("c", 0.0);
        Arc::make_mut(&mut c.row).who = Some("claude-code".into());
        let mut cands: Vec<Candidate> = [a, b, c]
            .into_iter()
            .map(|hit| Candidate {
                hit,
                score: 0.4,
                source: "keyword",
            })
            .collect();
        boost_named(&mut cands, "When did caroline meet Mel?", 0.5);
        let scores: Vec<f64> = cands.iter().map(|c| c.score).collect();
        assert!((scores[0] - 0.6).abs() < 1e-12, "{scores:?}");
        assert_eq!(scores[1], 0.4, "every word of who must be named");
        assert_eq!(scores[2], 0.4);
    }

    #[test]
    fn finish_drops_below_min_score_and_orders_on_full_precision() {
        let cand = |id: &str, score: f64, created: &str| {
            let mut h = hit(id, 0.0);
            Arc::make_mut(&mut h.row).created_at = created.into();
            Candidate {
                hit: h,
                score,
                source: "hybrid",
            }
        };
        let cands = vec![
            cand("low", 0.09, "2026-01-01"),
            cand("a", 0.454, "2026-01-01"),
            cand("b", 0.456, "2026-01-01"),
            cand("old", 0.3, "2026-01-01"),
            cand("new", 0.3, "2026-02-01"),
            cand("edge", 0.1, "2026-01-01"),
        ];
        let out = finish(cands, 0.1, 10);
        let ids: Vec<&str> = out.iter().map(|s| s.id.as_str()).collect();
        // 0.456 and 0.454 both round to 0.45 but keep their order; equal
        // scores put the newer first; 0.09 is dropped, 0.1 kept.
        assert_eq!(ids, vec!["b", "a", "new", "old", "edge"]);
        let wire = serde_json::to_value(&out[0]).expect("json");
        assert_eq!(wire["score"], 0.46);
        let mut over = out[0].clone();
        over.score = 1.37;
        assert_eq!(serde_json::to_value(&over).expect("json")["score"], 1.0);
        assert!(finish(vec![cand("x", 0.5, "2026-01-01")], 0.1, 0).is_empty());
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
