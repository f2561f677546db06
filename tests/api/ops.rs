//! Black-box tests of the operations features (SPEC §9, §11, §12; issue 5):
//! the retention sweeper, diagnostics, `/metrics`, repairs and analytics.
//! Each test starts real daemons on port 0 over temp workspaces and talks to
//! them over HTTP. The daemon reads the real clock, so rows are aged (and
//! the keyword index corrupted) by writing to the SQLite file directly while
//! the daemon runs. Every wait is bounded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use signet::auth::Role;
use signet::config::{AuthMode, Config};
use signet::store::Scope;

use crate::helpers::{
    assert_error_ctx, delete, into_resp, is_json, limit, model_dir, now, recover, remember_in,
    request_builder, spawn_in, spawn_with, token, Resp, TestApp, UNKNOWN_ID,
};

// ---------------------------------------------------------------------------
// clock, config and daemons
// ---------------------------------------------------------------------------

const MINUTE: i64 = 60;
const DAY: i64 = 86_400;

/// RFC 3339 (millis, `Z`) `secs` seconds before now, as the store writes it.
fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Only the start-up sweep runs (plus explicit ones), and no embedding
/// provider is expected, so the provider and coverage rules stay neutral.
fn quiet(cfg: &mut Config) {
    cfg.settings.retention.interval_seconds = 86_400;
    cfg.settings.embedding.provider = "none".into();
}

/// [`quiet`] in team mode.
fn quiet_team(cfg: &mut Config) {
    quiet(cfg);
    cfg.settings.auth.mode = AuthMode::Team;
}

async fn spawn_quiet() -> TestApp {
    spawn_with(quiet).await
}

/// Wait (bounded) until the start-up sweep is done: the sweeper handles
/// messages in order and the start-up run is queued first, so the answer
/// to an explicit sweep means the start-up one has finished.
async fn flush_startup_sweep(t: &TestApp) -> Value {
    let r = t.post("/api/repair/retention-sweep", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

// ---------------------------------------------------------------------------
// direct database access
// ---------------------------------------------------------------------------

/// A second connection to the daemon's database (WAL; the daemon keeps
/// running), with sqlite-vec loaded so `memory_vectors` is usable.
struct Db(Connection);

/// A 384-float little-endian vector blob.
fn vector_blob(seed: f32) -> Vec<u8> {
    (0..384)
        .flat_map(|i| (seed + i as f32 / 384.0).to_le_bytes())
        .collect()
}

impl Db {
    fn open(t: &TestApp) -> Db {
        signet::store::register_vec_extension();
        let c = Connection::open(signet::store::db_path(&t.workspace)).expect("open db");
        c.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        Db(c)
    }

    fn count(&self, sql: &str) -> i64 {
        self.0
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn count_p(&self, sql: &str, p: impl rusqlite::Params) -> i64 {
        self.0
            .query_row(sql, p, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> usize {
        self.0
            .execute(sql, p)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn live(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM memories WHERE is_deleted = 0")
    }

    fn fts_rows(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM memories_fts_docsize")
    }

    fn vectors(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM memory_vectors")
    }

    fn rowid(&self, id: &str) -> i64 {
        self.count_p("SELECT rowid FROM memories WHERE id = ?1", [id])
    }

    fn exists(&self, id: &str) -> bool {
        self.count_p("SELECT COUNT(*) FROM memories WHERE id = ?1", [id]) == 1
    }

    fn has_vector(&self, rowid: i64) -> bool {
        self.count_p(
            "SELECT COUNT(*) FROM memory_vectors WHERE rowid = ?1",
            [rowid],
        ) == 1
    }

    fn add_vector(&self, rowid: i64) {
        self.exec(
            "INSERT INTO memory_vectors(rowid, embedding) VALUES (?1, ?2)",
            params![rowid, vector_blob(rowid as f32)],
        );
    }

    fn set_deleted_at(&self, id: &str, at: &str) {
        let n = self.exec(
            "UPDATE memories SET deleted_at = ?1 WHERE id = ?2 AND is_deleted = 1",
            params![at, id],
        );
        assert_eq!(n, 1, "{id} is not a tombstone");
    }

    /// Insert a job row; `at` is both created_at and updated_at.
    fn job(&self, id: &str, memory_id: &str, status: &str, at: &str, leased_at: Option<&str>) {
        self.exec(
            "INSERT INTO memory_jobs(id, memory_id, kind, status, attempts, max_attempts, leased_at,
                 created_at, updated_at) VALUES (?1, ?2, 'extract', ?3, ?4, 3, ?5, ?6, ?6)",
            params![
                id,
                memory_id,
                status,
                if status == "dead" { 3 } else { 0 },
                leased_at,
                at
            ],
        );
    }

    fn jobs(&self, status: &str) -> i64 {
        self.count_p(
            "SELECT COUNT(*) FROM memory_jobs WHERE status = ?1",
            [status],
        )
    }

    fn job_exists(&self, id: &str) -> bool {
        self.count_p("SELECT COUNT(*) FROM memory_jobs WHERE id = ?1", [id]) == 1
    }

    fn history_row(&self, memory_id: &str, at: &str) {
        self.exec(
            "INSERT INTO memory_history(id, memory_id, event, reason, created_at)
             VALUES (?1, ?2, 'updated', 'aged by the test', ?3)",
            params![uuid::Uuid::new_v4().to_string(), memory_id, at],
        );
    }

    /// Remove one live row from the keyword index behind the daemon's back.
    fn corrupt_fts(&self, id: &str) {
        let (rowid, content): (i64, String) = self
            .0
            .query_row(
                "SELECT rowid, content FROM memories WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("row");
        self.exec(
            "INSERT INTO memories_fts(memories_fts, rowid, content) VALUES('delete', ?1, ?2)",
            params![rowid, content],
        );
    }

    /// `(reason, metadata)` of every repair audit row, oldest first.
    fn repair_audits(&self) -> Vec<(Option<String>, Option<String>)> {
        let mut s = self
            .0
            .prepare(
                "SELECT reason, metadata FROM memory_history
                 WHERE memory_id = '_repair' AND event = 'repair' ORDER BY rowid",
            )
            .expect("prepare");
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

// ---------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------

/// [`request_builder`] with a 60 s timeout.
fn builder(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    tok: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    request_builder(t, method, path, body, tok, headers).timeout(Duration::from_secs(60))
}

/// A JSON request with an optional bearer token and extra headers, and a
/// 60 s timeout.
async fn request_60s(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    tok: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let r = builder(t, method, path, body.as_ref(), tok, headers)
        .send()
        .await
        .expect("request");
    into_resp(r).await
}

/// A GET whose body is not necessarily JSON: status, content type, text.
async fn get_text(t: &TestApp, path: &str, tok: Option<&str>) -> (u16, String, String) {
    let r = builder(t, "GET", path, None, tok, &[])
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.text().await.expect("body"))
}

async fn tombstone(t: &TestApp, content: &str) -> String {
    let id = t.remember(content).await;
    delete(t, &id).await;
    id
}

/// POST /api/repair/<action>; asserts 200 and the common answer shape.
/// The tombstones the sweeps archived (`memory/archive/*.ndjson.gz`).
fn archived(workspace: &std::path::Path) -> Vec<Value> {
    use std::io::Read;
    let dir = signet::store::db_path(workspace)
        .parent()
        .expect("memory dir")
        .join("archive");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in entries {
        let path = e.expect("entry").path();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).expect("open"))
            .read_to_string(&mut text)
            .expect("gzip");
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("JSON line")),
        );
    }
    out
}

/// A sweep's purge counts, without the pages it gave back afterwards
/// (which depend on the page layout; checked in `tests/api/space.rs`).
fn purged(counts: &Value) -> Value {
    let mut c = counts.clone();
    let m = c.as_object_mut().expect("counts");
    let pages = m.remove("vacuumedPages").and_then(|p| p.as_i64());
    let step = m.remove("vacuumMaxStepMs").and_then(|p| p.as_u64());
    assert!(pages.is_some_and(|p| p >= 0) && step.is_some(), "{counts}");
    c
}

async fn repair(t: &TestApp, action: &str, body: Value) -> Value {
    let r = t.post(&format!("/api/repair/{action}"), body).await;
    assert_eq!(r.status, 200, "{action}: {:?}", r.body);
    assert!(is_json(&r), "{action}");
    let expected = if action == "requeue-dead" {
        "requeue-dead-jobs"
    } else {
        action
    };
    assert_eq!(r.body["action"], expected, "{:?}", r.body);
    assert_eq!(r.body["success"], true, "{:?}", r.body);
    assert!(r.body["affected"].is_i64(), "{:?}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{:?}",
        r.body
    );
    r.body
}

fn affected(b: &Value) -> i64 {
    b["affected"].as_i64().expect("affected")
}

/// The newest repair audit row must carry this answer's message and action.
fn assert_audited(db: &Db, answer: &Value, audits_before: usize) {
    let audits = db.repair_audits();
    assert_eq!(
        audits.len(),
        audits_before + 1,
        "one audit row per repair POST ({}): {audits:?}",
        answer["action"]
    );
    let (reason, meta) = audits.last().expect("audit row");
    assert_eq!(
        reason.as_deref(),
        answer["message"].as_str(),
        "audit reason is the message"
    );
    let meta: Value =
        serde_json::from_str(meta.as_deref().unwrap_or("null")).unwrap_or(Value::Null);
    assert_eq!(meta["action"], answer["action"], "audit metadata {meta:?}");
    assert_eq!(
        meta["affected"], answer["affected"],
        "audit metadata {meta:?}"
    );
}

// ---------------------------------------------------------------------------
// diagnostics helpers
// ---------------------------------------------------------------------------

const DOMAINS: [&str; 6] = [
    "queue",
    "storage",
    "index",
    "provider",
    "mutation",
    "duplicate",
];
const WEIGHTS: [(&str, f64); 6] = [
    ("queue", 0.25),
    ("storage", 0.10),
    ("index", 0.15),
    ("provider", 0.22),
    ("mutation", 0.08),
    ("duplicate", 0.04),
];

async fn diagnostics(t: &TestApp) -> Value {
    let r = t.get("/api/diagnostics").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    check_report(&r.body);
    r.body
}

/// Poll (bounded: the report is cached for a few seconds) until `pred`.
async fn diagnostics_until(t: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = diagnostics(t).await;
        if pred(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reported within 20 s; last report {d:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn score(d: &Value, domain: &str) -> f64 {
    d[domain]["score"]
        .as_f64()
        .unwrap_or_else(|| panic!("{domain} score missing: {d:#}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.0051
}

fn status_of(score: f64) -> &'static str {
    if score >= 0.8 {
        "healthy"
    } else if score >= 0.5 {
        "degraded"
    } else {
        "unhealthy"
    }
}

/// The weighted mean of the domain scores, normalised by the weights' sum.
fn expected_composite(d: &Value) -> f64 {
    let (mut sum, mut w) = (0.0, 0.0);
    for (name, weight) in WEIGHTS {
        sum += score(d, name) * weight;
        w += weight;
    }
    sum / w
}

/// Shape and internal consistency of a full report.
fn check_report(d: &Value) {
    assert!(d["timestamp"].is_string(), "timestamp: {d:#}");
    for dom in DOMAINS {
        let s = score(d, dom);
        assert!((0.0..=1.0).contains(&s), "{dom} score {s} out of [0,1]");
    }
    let c = d["composite"]["score"].as_f64().expect("composite score");
    assert!(
        close(c, expected_composite(d)),
        "composite {c} is not the weighted mean {} of {d:#}",
        expected_composite(d)
    );
    assert_eq!(
        d["composite"]["status"],
        status_of(c),
        "composite status must follow its score: {d:#}"
    );
}

fn assert_score(d: &Value, domain: &str, want: f64, ctx: &str) {
    let s = score(d, domain);
    assert!(
        close(s, want),
        "{ctx}: {domain} score {s}, want {want}: {:#}",
        d[domain]
    );
}

/// A fresh quiet daemon seeded through the database, and its first report.
async fn seeded(seed: impl FnOnce(&Db)) -> (TestApp, Value) {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    seed(&db);
    let d = diagnostics(&t).await;
    (t, d)
}

// ---------------------------------------------------------------------------
// Prometheus text exposition validator (format 0.0.4)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !s.starts_with("__")
}

/// A sample value: a Go-style float or `+Inf`, `-Inf`, `NaN`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => return Some(f64::INFINITY),
        "-Inf" => return Some(f64::NEG_INFINITY),
        "NaN" => return Some(f64::NAN),
        _ => {}
    }
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !ok_chars || !s.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let ch: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < ch.len() && ch[i] != '{' && ch[i] != ' ' {
        i += 1;
    }
    let name: String = ch[..i].iter().collect();
    if !valid_metric_name(&name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    if ch.get(i) == Some(&'{') {
        i += 1;
        loop {
            if ch.get(i) == Some(&'}') {
                i += 1;
                break;
            }
            let start = i;
            while i < ch.len() && ch[i] != '=' {
                i += 1;
            }
            let lname: String = ch[start..i].iter().collect();
            if !valid_label_name(&lname) {
                return Err(format!("invalid label name {lname:?}"));
            }
            if ch.get(i) != Some(&'=') || ch.get(i + 1) != Some(&'"') {
                return Err(format!("label {lname} needs =\"value\""));
            }
            i += 2;
            let mut val = String::new();
            loop {
                match ch.get(i) {
                    None => return Err(format!("unterminated value of label {lname}")),
                    Some('\\') => {
                        match ch.get(i + 1) {
                            Some('\\') => val.push('\\'),
                            Some('"') => val.push('"'),
                            Some('n') => val.push('\n'),
                            other => return Err(format!("invalid escape \\{other:?}")),
                        }
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        val.push(*c);
                        i += 1;
                    }
                }
            }
            if labels.insert(lname.clone(), val).is_some() {
                return Err(format!("label {lname} repeated"));
            }
            match ch.get(i) {
                Some(',') => i += 1,
                Some('}') => {
                    i += 1;
                    break;
                }
                other => return Err(format!("expected , or }} after a label, got {other:?}")),
            }
        }
    }
    if ch.get(i) != Some(&' ') {
        return Err("expected a blank before the value".into());
    }
    let rest: String = ch[i..].iter().collect();
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let value = match parts.first() {
        Some(v) => parse_value(v).ok_or_else(|| format!("invalid value {v:?}"))?,
        None => return Err("missing value".into()),
    };
    match parts.len() {
        1 => {}
        2 if parts[1].parse::<i64>().is_ok() => {}
        _ => return Err(format!("trailing garbage {rest:?}")),
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// The metric family a sample belongs to, from the TYPE lines seen so far.
fn family_of(name: &str, types: &HashMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            match types.get(base).map(String::as_str) {
                Some("histogram") => return Some(base.to_string()),
                Some("summary") if suffix != "_bucket" => return Some(base.to_string()),
                _ => {}
            }
        }
    }
    None
}

/// Parse and validate a text exposition; the error names the line.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut sampled: HashSet<String> = HashSet::new();
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let ln = n + 1;
        let err = |m: String| format!("line {ln} {line:?}: {m}");
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.first().copied() {
                Some("TYPE") => {
                    let name = words.get(1).copied().unwrap_or("");
                    let kind = words.get(2).map(|k| k.trim()).unwrap_or("");
                    if !valid_metric_name(name) {
                        return Err(err(format!("TYPE of invalid name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind:?}")));
                    }
                    if sampled.contains(name) {
                        return Err(err(format!("TYPE of {name} after its samples")));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(err(format!("second TYPE for {name}")));
                    }
                }
                Some("HELP") => {
                    let name = words.get(1).copied().unwrap_or("");
                    if !valid_metric_name(name) {
                        return Err(err(format!("HELP of invalid name {name:?}")));
                    }
                    if !helps.insert(name.to_string()) {
                        return Err(err(format!("second HELP for {name}")));
                    }
                }
                _ => {}
            }
            continue;
        }
        let s = parse_sample(line).map_err(err)?;
        let family = family_of(&s.name, &types)
            .ok_or_else(|| err(format!("{} has no preceding # TYPE", s.name)))?;
        if current.as_deref() != Some(family.as_str()) {
            if closed.contains(&family) {
                return Err(err(format!("samples of {family} are not grouped together")));
            }
            if let Some(c) = current.take() {
                closed.insert(c);
            }
            current = Some(family.clone());
        }
        sampled.insert(family.clone());
        if !series.insert(format!("{}{:?}", s.name, s.labels)) {
            return Err(err("duplicate series".into()));
        }
        match types[&family].as_str() {
            "counter" if s.value.is_nan() || s.value < 0.0 => {
                return Err(err("a counter must be a non-negative number".into()))
            }
            "histogram" => {
                if s.name == family {
                    return Err(err(
                        "a histogram sample needs _bucket, _sum or _count".into()
                    ));
                }
                if s.name.ends_with("_bucket") {
                    let le = s
                        .labels
                        .get("le")
                        .ok_or_else(|| err("bucket without le".into()))?;
                    parse_value(le).ok_or_else(|| err(format!("bad le {le:?}")))?;
                }
            }
            _ => {}
        }
        samples.push(s);
    }
    // Histograms: per label set, buckets in increasing le order with
    // non-decreasing counts, ending at le="+Inf" == _count, and a _sum.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut rest = s.labels.clone();
            let le = parse_value(&rest.remove("le").unwrap_or_default()).unwrap_or(f64::NAN);
            groups
                .entry(format!("{rest:?}"))
                .or_default()
                .push((le, s.value));
        }
        for (labels, buckets) in &groups {
            for w in buckets.windows(2) {
                if w[1].0 <= w[0].0 {
                    return Err(format!("{family}{labels}: le not increasing: {buckets:?}"));
                }
                if w[1].1 < w[0].1 {
                    return Err(format!(
                        "{family}{labels}: buckets not cumulative: {buckets:?}"
                    ));
                }
            }
            let (le, last) = *buckets.last().expect("bucket");
            if le != f64::INFINITY {
                return Err(format!("{family}{labels}: last bucket is not +Inf"));
            }
            let find = |suffix: &str| {
                samples
                    .iter()
                    .find(|s| {
                        s.name == format!("{family}{suffix}")
                            && format!("{:?}", s.labels) == *labels
                    })
                    .map(|s| s.value)
            };
            match find("_count") {
                Some(c) if c == last => {}
                other => {
                    return Err(format!(
                        "{family}{labels}: +Inf bucket {last} but _count {other:?}"
                    ))
                }
            }
            if find("_sum").is_none() {
                return Err(format!("{family}{labels}: no _sum"));
            }
        }
        let counts = samples
            .iter()
            .filter(|s| s.name == format!("{family}_count"))
            .count();
        if counts != groups.len() {
            return Err(format!(
                "{family}: {counts} _count series for {} bucket sets",
                groups.len()
            ));
        }
    }
    Ok(Exposition { types, samples })
}

async fn metrics(t: &TestApp, tok: Option<&str>) -> Exposition {
    let (status, ct, text) = get_text(t, "/metrics", tok).await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("text/plain"), "content type {ct:?}");
    parse_exposition(&text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

// ===========================================================================
// 0. the validator itself
// ===========================================================================

#[test]
fn the_exposition_validator_accepts_the_format_and_rejects_its_violations() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 3\n\
                # TYPE g gauge\ng -Inf\ng{k=\"v\"} 1.5e3 1700000000000\n\
                # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n";
    let e = parse_exposition(good).expect("valid");
    assert_eq!(e.must("a_total", &[("x", "q\"\\\n"), ("y", "")]), 3.0);
    assert_eq!(e.must("g", &[("k", "v")]), 1500.0);
    let bad = [
        ("a 1\n", "no TYPE"),
        ("# TYPE 1a gauge\n1a 1\n", "bad name"),
        ("# TYPE a gauge\na{b=\"\\t\"} 1\n", "bad escape"),
        ("# TYPE a gauge\na{b=c} 1\n", "unquoted label"),
        ("# TYPE a gauge\na{__b=\"c\"} 1\n", "reserved label"),
        ("# TYPE a gauge\na one\n", "bad value"),
        ("# TYPE a gauge\na inf\n", "Go spelling of infinity"),
        ("# TYPE a gauge\na 1\na 2\n", "duplicate series"),
        ("# TYPE a counter\na -1\n", "negative counter"),
        ("# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 1\n", "interleaved"),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "not cumulative",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            "no +Inf",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
            "+Inf != count",
        ),
    ];
    for (text, why) in bad {
        assert!(
            parse_exposition(text).is_err(),
            "accepted ({why}): {text:?}"
        );
    }
}

// ===========================================================================
// 1. retention
// ===========================================================================

/// Poll `sql` (a count) until it reaches `want`, at most 60 s.
async fn wait_count(db: &Db, sql: &str, want: i64, what: &str) {
    let start = std::time::Instant::now();
    loop {
        let n = db.count(sql);
        if n == want {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{what}: {sql} is {n}, want {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Retention driven by the daemon's own clock: every row is written by the
/// daemon (real vectors from the native model, real history and job rows),
/// then the clock moves a month on, as if the daemon had run that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_clock_moved_a_month_on_old_tombstones_vanish_from_memories_fts_and_vectors_young_ones_stay(
) {
    let clock = signet::clock::Clock::default();
    let c = clock.clone();
    let t = spawn_with(move |cfg| {
        quiet(cfg);
        cfg.settings.embedding.provider = "native".into();
        cfg.settings.embedding.model_path = Some(model_dir().to_string_lossy().into_owned());
        cfg.clock = c;
    })
    .await;
    let db = Db::open(&t);
    flush_startup_sweep(&t).await;

    let old1 = t.remember("clocked retention harbor lights at dusk").await;
    let old2 = t.remember("clocked retention maple syrup season").await;
    let young = t.remember("clocked retention onyx chess pieces").await;
    let live = t.remember("clocked retention prairie wind farm").await;
    wait_count(
        &db,
        "SELECT COUNT(*) FROM memory_vectors",
        4,
        "all four embedded",
    )
    .await;
    // A content change queues an embed job; it completes at day 0.
    let r = t
        .send(
            "PATCH",
            &format!("/api/memory/{live}"),
            json!({ "content": "clocked retention prairie wind farm, rebuilt", "reason": "edit" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_count(
        &db,
        "SELECT COUNT(*) FROM memory_jobs WHERE kind = 'embed' AND status = 'completed'",
        1,
        "the re-embed job done",
    )
    .await;
    let rows: Vec<i64> = [&old1, &old2, &young, &live]
        .iter()
        .map(|id| db.rowid(id))
        .collect();

    // Day 0: two tombstones. Day 20: a third.
    delete(&t, &old1).await;
    delete(&t, &old2).await;
    clock.advance(std::time::Duration::from_secs(20 * DAY as u64));
    delete(&t, &young).await;
    let old1_at: String =
        db.0.query_row(
            "SELECT deleted_at FROM memories WHERE id = ?1",
            [&old1],
            |r| r.get(0),
        )
        .expect("deleted_at");
    // Day 31.
    clock.advance(std::time::Duration::from_secs(11 * DAY as u64));
    // Past the recover window on the daemon's clock, though only seconds
    // old on the wall: refused even before any sweep.
    let r = recover(&t, &old2, json!({ "reason": "test" })).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.body["status"], "retention_expired", "{:?}", r.body);

    let r = repair(&t, "retention-sweep", json!({})).await;
    assert_eq!(
        purged(&r["counts"]),
        json!({ "tombstones": 2, "history": 0, "completedJobs": 1, "deadJobs": 0 }),
        "the day-0 tombstones and the 31-day-old completed job: {r:?}"
    );
    for id in [&old1, &old2] {
        assert!(!db.exists(id), "{id}: past 30 days, hard-deleted");
    }
    assert!(
        db.exists(&young) && db.exists(&live),
        "11 days and live stay"
    );
    assert_eq!(db.fts_rows(), db.live(), "FTS rows == live rows");
    for (i, row) in rows.iter().enumerate() {
        let kept = i >= 2;
        assert_eq!(db.has_vector(*row), kept, "vec0 row {i}");
        assert_eq!(
            db.count_p(
                "SELECT COUNT(*) FROM memory_embeddings WHERE memory_rowid = ?1",
                [row]
            ) == 1,
            kept,
            "stored vector {i}"
        );
    }
    // The archive keeps the archived rows as they were.
    let arch = archived(&t.workspace);
    let rec = arch
        .iter()
        .find(|r| r["id"] == old1.as_str())
        .expect("old1 archived");
    assert_eq!(rec["content"], "clocked retention harbor lights at dusk");
    assert_eq!(rec["deleted_at"], old1_at.as_str());
    let archived_at = rec["archived_at"].as_str().expect("archived_at");
    let archived = chrono::DateTime::parse_from_rfc3339(archived_at).expect("archived_at");
    let deleted = chrono::DateTime::parse_from_rfc3339(&old1_at).expect("deleted_at");
    assert!(
        archived - deleted >= chrono::Duration::days(31),
        "archived on the daemon's day 31: {archived_at} vs {old1_at}"
    );
    assert_eq!(arch.len(), 2);

    // Over HTTP: swept is gone for good, the 11-day tombstone recovers.
    assert_error_ctx(
        &recover(&t, &old1, json!({ "reason": "test" })).await,
        404,
        "recover swept",
    );
    assert_error_ctx(
        &t.get(&format!("/api/memory/{old2}")).await,
        404,
        "get swept",
    );
    let r = recover(&t, &young, json!({ "reason": "test" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_archives_old_tombstones_purges_old_history_and_jobs_and_keeps_the_rest(
) {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let first = flush_startup_sweep(&t).await;
    assert_eq!(
        purged(&first["counts"]),
        json!({ "tombstones": 0, "history": 0, "completedJobs": 0, "deadJobs": 0 }),
        "nothing to sweep in a fresh store: {first:?}"
    );
    assert_eq!(first["affected"], 0);

    // Tombstones: two past the 30-day window, one just inside, one from yesterday.
    let old1 = tombstone(&t, "retention forty days gone").await;
    let old2 = tombstone(&t, "retention thirty one days gone").await;
    let edge = tombstone(&t, "retention twenty nine days gone").await;
    let recent = tombstone(&t, "retention deleted yesterday").await;
    let live = t.remember("retention live memory").await;
    let (old1_at, old2_at) = (ago(40 * DAY), ago(31 * DAY));
    db.set_deleted_at(&old1, &old1_at);
    db.set_deleted_at(&old2, &old2_at);
    db.set_deleted_at(&edge, &ago(29 * DAY));
    db.set_deleted_at(&recent, &ago(DAY));
    let (old1_row, recent_row, live_row) = (db.rowid(&old1), db.rowid(&recent), db.rowid(&live));
    for r in [old1_row, recent_row, live_row] {
        db.add_vector(r);
    }
    // A job of a swept tombstone goes with it.
    db.job("job-of-old1", &old1, "pending", &ago(0), None);

    // History: three rows past 180 days, one at 170 days.
    for _ in 0..3 {
        db.history_row(&live, &ago(200 * DAY));
    }
    db.history_row(&live, &ago(170 * DAY));
    // Memory history only: the sweep adds its own '_repair' audit row.
    let history_before =
        db.count("SELECT COUNT(*) FROM memory_history WHERE memory_id != '_repair'");

    // Jobs: completed > 14 d and dead > 30 d go; younger ones and other
    // statuses stay whatever their age.
    db.job("completed-15d", "m1", "completed", &ago(15 * DAY), None);
    db.job("completed-20d", "m2", "completed", &ago(20 * DAY), None);
    db.job("completed-13d", "m3", "completed", &ago(13 * DAY), None);
    db.job("dead-31d", "m4", "dead", &ago(31 * DAY), None);
    db.job("dead-29d", "m5", "dead", &ago(29 * DAY), None);
    db.job("pending-100d", "m6", "pending", &ago(100 * DAY), None);
    db.job("failed-100d", "m7", "failed", &ago(100 * DAY), None);

    assert_eq!(db.fts_rows(), db.live(), "FTS rows == live rows before");
    let r = repair(&t, "retention-sweep", json!({})).await;
    assert_eq!(
        purged(&r["counts"]),
        json!({ "tombstones": 2, "history": 3, "completedJobs": 2, "deadJobs": 1 }),
        "{r:?}"
    );
    assert_eq!(affected(&r), 8, "affected is the sum of the counts: {r:?}");

    // Memories, keyword index and vectors.
    assert!(
        !db.exists(&old1) && !db.exists(&old2),
        "old tombstones hard-deleted"
    );
    for id in [&edge, &recent, &live] {
        assert!(db.exists(id), "{id} must stay");
    }
    assert_eq!(db.live(), 1);
    assert_eq!(
        db.fts_rows(),
        db.live(),
        "FTS rows == live rows after the sweep"
    );
    assert!(
        !db.has_vector(old1_row),
        "the swept tombstone's vector is gone"
    );
    assert!(
        db.has_vector(recent_row) && db.has_vector(live_row),
        "other vectors stay"
    );
    assert_eq!(db.vectors(), 2);
    assert!(
        !db.job_exists("job-of-old1"),
        "the swept tombstone's job is gone"
    );

    // The archive holds the archived rows, the young tombstones are not there.
    let arch = archived(&t.workspace);
    for (id, content, deleted_at) in [
        (&old1, "retention forty days gone", &old1_at),
        (&old2, "retention thirty one days gone", &old2_at),
    ] {
        let rec = arch
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not archived"));
        assert_eq!(rec["content"], content, "{rec:?}");
        assert_eq!(rec["deleted_at"], deleted_at.as_str(), "{rec:?}");
        assert_eq!(rec["is_deleted"], true, "{rec:?}");
        let archived_at = rec["archived_at"].as_str().expect("archived_at");
        let archived = chrono::DateTime::parse_from_rfc3339(archived_at).expect("archived_at");
        assert!(
            (now() - archived.timestamp()).abs() < 600,
            "archived just now"
        );
    }
    assert_eq!(arch.len(), 2);
    // Nothing goes to the old cold table any more.
    assert_eq!(db.count("SELECT COUNT(*) FROM memories_archive"), 0);

    // History and jobs.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM memory_history WHERE memory_id != '_repair'"),
        history_before - 3,
        "exactly the three old history rows are purged"
    );
    assert_eq!(
        db.count_p(
            "SELECT COUNT(*) FROM memory_history WHERE memory_id = ?1 AND reason = 'aged by the test'",
            [&live]
        ),
        1,
        "the 170-day row stays"
    );
    for gone in ["completed-15d", "completed-20d", "dead-31d"] {
        assert!(!db.job_exists(gone), "{gone} must be purged");
    }
    for kept in ["completed-13d", "dead-29d", "pending-100d", "failed-100d"] {
        assert!(db.job_exists(kept), "{kept} must stay");
    }

    // Over HTTP: the swept tombstone is gone for good, the young one recovers.
    assert_error_ctx(
        &t.get(&format!("/api/memory/{old1}")).await,
        404,
        "get swept",
    );
    assert_error_ctx(
        &recover(&t, &old1, json!({ "reason": "test" })).await,
        404,
        "recover swept",
    );
    assert_error_ctx(
        &recover(&t, &old2, json!({ "reason": "test" })).await,
        404,
        "recover swept",
    );
    let r = recover(&t, &recent, json!({ "reason": "test" })).await;
    assert_eq!(
        r.status, 200,
        "yesterday's tombstone recovers: {:?}",
        r.body
    );
    assert_eq!(
        t.get(&format!("/api/memory/{recent}")).await.body["is_deleted"],
        0
    );
    assert_eq!(
        db.fts_rows(),
        db.live(),
        "FTS rows == live rows after recover"
    );

    // A second sweep finds nothing.
    let again = repair(&t, "retention-sweep", json!({})).await;
    assert_eq!(again["affected"], 0, "{again:?}");

    // SPEC §11: every repair POST writes an audit history row.
    let audits = db.repair_audits();
    assert!(
        audits
            .iter()
            .any(|(reason, _)| reason.as_deref() == again["message"].as_str()),
        "POST /api/repair/retention-sweep wrote no audit row (memory_id '_repair', event 'repair'): {audits:?}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_runs_in_batches_until_every_step_is_exhausted() {
    let t = spawn_with(|c| {
        quiet(c);
        c.settings.retention.batch_size = 2;
    })
    .await;
    let db = Db::open(&t);
    flush_startup_sweep(&t).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = tombstone(&t, &format!("batched tombstone number {i}")).await;
        db.set_deleted_at(&id, &ago((40 + i) * DAY));
        ids.push(id);
    }
    let keep = tombstone(&t, "batched tombstone from today").await;
    for _ in 0..5 {
        db.history_row("batch-history", &ago(365 * DAY));
    }
    for i in 0..3 {
        db.job(
            &format!("c{i}"),
            &format!("mc{i}"),
            "completed",
            &ago(60 * DAY),
            None,
        );
        db.job(
            &format!("d{i}"),
            &format!("md{i}"),
            "dead",
            &ago(60 * DAY),
            None,
        );
    }
    let r = repair(&t, "retention-sweep", json!({})).await;
    assert_eq!(
        purged(&r["counts"]),
        json!({ "tombstones": 5, "history": 5, "completedJobs": 3, "deadJobs": 3 }),
        "{r:?}"
    );
    for id in &ids {
        assert!(!db.exists(id), "{id} swept");
    }
    assert!(db.exists(&keep));
    assert_eq!(archived(&t.workspace).len(), 5);
    assert_eq!(db.count("SELECT COUNT(*) FROM memory_jobs"), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_sweep_archives_tombstones_left_from_before_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let t = spawn_in(dir.path().to_path_buf(), quiet).await;
    let db = Db::open(&t);
    let old = tombstone(&t, "swept at the next start").await;
    db.set_deleted_at(&old, &ago(45 * DAY));
    drop(db);
    t.stop().await;

    // No explicit sweep: the one at start takes it.
    let t = spawn_in(dir.path().to_path_buf(), quiet).await;
    let db = Db::open(&t);
    let deadline = Instant::now() + Duration::from_secs(15);
    while db.exists(&old) {
        assert!(Instant::now() < deadline, "the start-up sweep never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        archived(dir.path())
            .iter()
            .filter(|r| r["id"] == old.as_str())
            .count(),
        1
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_runs_again_every_interval() {
    let t = spawn_with(|c| {
        quiet(c);
        c.settings.retention.interval_seconds = 1;
    })
    .await;
    let db = Db::open(&t);
    let old = tombstone(&t, "swept by the timer").await;
    db.set_deleted_at(&old, &ago(45 * DAY));
    db.job("old-done", "m", "completed", &ago(30 * DAY), None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while db.exists(&old) || db.job_exists("old-done") {
        assert!(Instant::now() < deadline, "no timed sweep within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(archived(&t.workspace).len(), 1);
    t.stop().await;
}

// ===========================================================================
// 2. diagnostics
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_of_a_clean_store_are_healthy_cached_per_domain_and_carried_by_status() {
    let t = spawn_quiet().await;
    for i in 0..3 {
        t.remember(&format!("clean store memory {i}")).await;
    }
    let d = diagnostics(&t).await;
    for dom in DOMAINS {
        assert_score(&d, dom, 1.0, "clean store");
    }
    assert_eq!(d["composite"], json!({ "score": 1.0, "status": "healthy" }));
    assert_eq!(d["storage"]["integrity"], "ok");
    assert!(
        d["storage"]["dbSizeBytes"].as_i64().unwrap_or(0) > 0,
        "{d:#}"
    );
    assert_eq!(d["index"]["liveMemories"], 3);
    assert_eq!(d["index"]["ftsRows"], 3);

    // Cached: an immediate second call is the same report.
    let again = diagnostics(&t).await;
    assert_eq!(again["timestamp"], d["timestamp"], "cached report");

    // /api/status carries the composite.
    let s = t.get("/api/status").await;
    assert_eq!(s.status, 200);
    assert_eq!(
        s.body["health"], d["composite"],
        "status health == composite"
    );

    // One domain at a time.
    for dom in DOMAINS {
        let r = t.get(&format!("/api/diagnostics/{dom}")).await;
        assert_eq!(r.status, 200, "{dom}: {:?}", r.body);
        assert!(is_json(&r));
        assert_eq!(r.body[dom], d[dom], "{dom} matches the full report");
        for other in DOMAINS.iter().filter(|o| **o != dom) {
            assert!(r.body.get(*other).is_none(), "{dom} report carries {other}");
        }
        assert!(r.body.get("composite").is_none(), "{:?}", r.body);
    }
    for bad in ["nope", "composite", "QUEUE"] {
        assert_error_ctx(
            &t.get(&format!("/api/diagnostics/{bad}")).await,
            400,
            &format!("unknown domain {bad}"),
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_deductions_follow_real_jobs() {
    // 60 pending jobs: −0.3 and a lower composite.
    let (t, d) = seeded(|db| {
        for i in 0..60 {
            db.job(&format!("p{i}"), &format!("m{i}"), "pending", &ago(0), None);
        }
    })
    .await;
    assert_eq!(d["queue"]["pending"], 60);
    assert!(score(&d, "queue") <= 0.7 + 1e-9, "{:#}", d["queue"]);
    assert_score(&d, "queue", 0.7, "60 pending");
    assert!(d["composite"]["score"].as_f64().unwrap() < 1.0, "{d:#}");
    let q = t.get("/api/diagnostics/queue").await;
    assert_eq!(q.body["queue"], d["queue"]);
    t.stop().await;

    // 50 pending is not over the limit.
    let (t, d) = seeded(|db| {
        for i in 0..50 {
            db.job(&format!("p{i}"), &format!("m{i}"), "pending", &ago(0), None);
        }
    })
    .await;
    assert_score(&d, "queue", 1.0, "50 pending");
    t.stop().await;

    // The oldest pending job waits 10 minutes: −0.2.
    let (t, d) = seeded(|db| db.job("old", "m", "pending", &ago(10 * MINUTE), None)).await;
    let age = d["queue"]["oldestPendingSeconds"].as_i64().expect("age");
    assert!((590..=900).contains(&age), "oldest pending {age} s");
    assert_score(&d, "queue", 0.8, "10-minute-old pending job");
    t.stop().await;

    // A lease taken 10 minutes ago is stale, one taken now is not: −0.2.
    let (t, d) = seeded(|db| {
        db.job(
            "stale",
            "m1",
            "leased",
            &ago(10 * MINUTE),
            Some(&ago(10 * MINUTE)),
        );
        db.job("fresh", "m2", "leased", &ago(0), Some(&ago(0)));
    })
    .await;
    assert_eq!(d["queue"]["staleLeases"], 1, "{:#}", d["queue"]);
    assert_eq!(d["queue"]["leased"], 2);
    assert_score(&d, "queue", 0.8, "stale lease");
    t.stop().await;

    // Dead rate 2% (> 1%): −0.3.
    let (t, d) = seeded(|db| {
        db.job("dead", "m0", "dead", &ago(0), None);
        for i in 0..49 {
            db.job(
                &format!("c{i}"),
                &format!("m{i}"),
                "completed",
                &ago(0),
                None,
            );
        }
    })
    .await;
    assert!(
        (d["queue"]["deadRate"].as_f64().unwrap() - 0.02).abs() < 1e-9,
        "{:#}",
        d["queue"]
    );
    assert_score(&d, "queue", 0.7, "dead rate 2%");
    t.stop().await;

    // Dead rate exactly 1% is not over the limit.
    let (t, d) = seeded(|db| {
        db.job("dead", "m0", "dead", &ago(0), None);
        for i in 0..99 {
            db.job(
                &format!("c{i}"),
                &format!("m{i}"),
                "completed",
                &ago(0),
                None,
            );
        }
    })
    .await;
    assert_score(&d, "queue", 1.0, "dead rate 1%");
    t.stop().await;

    // Everything at once: the queue bottoms out and the composite degrades.
    let (t, d) = seeded(|db| {
        for i in 0..60 {
            db.job(
                &format!("p{i}"),
                &format!("m{i}"),
                "pending",
                &ago(10 * MINUTE),
                None,
            );
        }
        db.job(
            "stale",
            "ms",
            "leased",
            &ago(10 * MINUTE),
            Some(&ago(10 * MINUTE)),
        );
        db.job("dead", "md", "dead", &ago(0), None);
    })
    .await;
    assert_score(&d, "queue", 0.0, "every queue deduction");
    assert_eq!(d["composite"]["status"], "degraded", "{d:#}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_loses_0_3_when_tombstones_exceed_30_percent() {
    let t = spawn_quiet().await;
    let mut live = Vec::new();
    for i in 0..7 {
        live.push(t.remember(&format!("storage live {i}")).await);
    }
    for i in 0..3 {
        tombstone(&t, &format!("storage gone {i}")).await;
    }
    // 3 of 10 is not over 30 %.
    let d = diagnostics(&t).await;
    assert_eq!(d["storage"]["tombstones"], 3);
    assert_eq!(d["storage"]["memories"], 10);
    assert_score(&d, "storage", 1.0, "30% tombstones");
    // 4 of 10.
    delete(&t, &live[0]).await;
    let d = diagnostics_until(&t, "4 tombstones", |d| d["storage"]["tombstones"] == 4).await;
    assert!((d["storage"]["tombstoneRatio"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    assert_score(&d, "storage", 0.7, "40% tombstones");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_keyword_index_is_reported_and_check_fts_repairs_it() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let mut ids = Vec::new();
    for word in ["aardvark", "bandicoot", "capybara", "dugong"] {
        ids.push(t.remember(&format!("the {word} is an animal")).await);
    }
    db.corrupt_fts(&ids[2]);
    assert_eq!(db.fts_rows(), 3);

    let d = diagnostics(&t).await;
    assert_eq!(d["index"]["liveMemories"], 4, "{:#}", d["index"]);
    assert_eq!(d["index"]["ftsRows"], 3, "{:#}", d["index"]);
    assert_score(&d, "index", 0.5, "one keyword row missing");
    assert!(score(&d, "index") < 1.0);

    // A check without repair reports and changes nothing.
    let audits = db.repair_audits().len();
    let r = repair(&t, "check-fts", json!({})).await;
    assert_eq!(affected(&r), 1, "{r:?}");
    assert_audited(&db, &r, audits);
    assert_eq!(db.fts_rows(), 3, "a check alone repairs nothing");

    // With repair the index is rebuilt from live rows.
    let r = repair(&t, "check-fts", json!({ "repair": true })).await;
    assert!(affected(&r) >= 1, "{r:?}");
    assert_audited(&db, &r, audits + 1);
    assert_eq!(
        db.fts_rows(),
        db.live(),
        "FTS rows == live rows after repair"
    );
    let found = t
        .post("/api/memory/recall", json!({ "query": "capybara" }))
        .await;
    assert_eq!(found.status, 200);
    assert!(
        found.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|m| m["id"] == ids[2].as_str()),
        "the repaired row is searchable again: {:?}",
        found.body
    );
    let d = diagnostics_until(&t, "index restored", |d| d["index"]["ftsRows"] == 4).await;
    assert_score(&d, "index", 1.0, "after repair");

    // A stale row (a tombstone left in the index) is found and fixed too.
    let gone = tombstone(&t, "the echidna is an animal").await;
    db.exec(
        "INSERT INTO memories_fts(rowid, content) VALUES (?1, 'the echidna is an animal')",
        [db.rowid(&gone)],
    );
    let r = repair(&t, "check-fts", json!({})).await;
    assert_eq!(affected(&r), 1, "one stale row: {r:?}");
    let r = repair(&t, "check-fts", json!({ "repair": true })).await;
    assert_eq!(affected(&r), 1, "{r:?}");
    assert_eq!(db.fts_rows(), db.live());
    let r = repair(&t, "check-fts", json!({})).await;
    assert_eq!(affected(&r), 0, "clean after repair: {r:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_five_recovers_in_seven_days_lower_the_mutation_score() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(tombstone(&t, &format!("recovered memory {i}")).await);
    }
    for id in &ids[..5] {
        assert_eq!(
            recover(&t, id, json!({ "reason": "test" })).await.status,
            200
        );
    }
    let d = diagnostics(&t).await;
    assert_eq!(d["mutation"]["recoversLast7Days"], 5, "{:#}", d["mutation"]);
    assert_score(&d, "mutation", 1.0, "5 recovers");

    assert_eq!(
        recover(&t, &ids[5], json!({ "reason": "test" }))
            .await
            .status,
        200
    );
    let d = diagnostics_until(&t, "6 recovers", |d| {
        d["mutation"]["recoversLast7Days"] == 6
    })
    .await;
    assert_score(&d, "mutation", 0.7, "6 recovers");

    // Recovers older than 7 days no longer count.
    db.exec(
        "UPDATE memory_history SET created_at = ?1 WHERE event = 'recovered' AND memory_id IN (?2, ?3)",
        params![ago(8 * DAY), ids[0], ids[1]],
    );
    let d = diagnostics_until(&t, "4 recent recovers", |d| {
        d["mutation"]["recoversLast7Days"] == 4
    })
    .await;
    assert_score(&d, "mutation", 1.0, "4 recent recovers");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_score_follows_the_ratio_of_cross_project_copies() {
    let t = spawn_quiet().await;
    remember_in(&t, "a fact copied across projects", "a").await;
    for i in 0..8 {
        t.remember(&format!("unique fact {i}")).await;
    }
    remember_in(&t, "a fact copied across projects", "b").await;
    // 1 duplicate of 10 live rows: 10 % is over 5 % but not over 10 %.
    let d = diagnostics(&t).await;
    assert_eq!(d["duplicate"]["duplicates"], 1, "{:#}", d["duplicate"]);
    assert_score(&d, "duplicate", 0.7, "10% duplicates");

    remember_in(&t, "a fact copied across projects", "c").await;
    let d = diagnostics_until(&t, "2 duplicates", |d| d["duplicate"]["duplicates"] == 2).await;
    assert_score(&d, "duplicate", 0.5, "2 of 11 duplicates");

    let r = repair(&t, "deduplicate", json!({})).await;
    assert_eq!(affected(&r), 2, "{r:?}");
    let d = diagnostics_until(&t, "no duplicates", |d| d["duplicate"]["duplicates"] == 0).await;
    assert_score(&d, "duplicate", 1.0, "after deduplicate");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_domain_hurt_at_once_makes_the_composite_unhealthy_and_status_says_so() {
    // Default embedding provider: vectors are expected, none exist.
    let t = spawn_with(|c| c.settings.retention.interval_seconds = 86_400).await;
    let db = Db::open(&t);
    for p in ["p1", "p2", "p3", "p4"] {
        remember_in(&t, "the same fact everywhere", p).await;
    }
    for i in 0..6 {
        let id = tombstone(&t, &format!("deleted then recovered {i}")).await;
        assert_eq!(
            recover(&t, &id, json!({ "reason": "test" })).await.status,
            200
        );
    }
    let mut others = Vec::new();
    for i in 0..2 {
        others.push(t.remember(&format!("an ordinary fact {i}")).await);
    }
    for i in 0..6 {
        tombstone(&t, &format!("a tombstone {i}")).await;
    }
    db.corrupt_fts(&others[0]);
    for i in 0..60 {
        db.job(
            &format!("p{i}"),
            &format!("m{i}"),
            "pending",
            &ago(10 * MINUTE),
            None,
        );
    }
    db.job(
        "stale",
        "ms",
        "leased",
        &ago(10 * MINUTE),
        Some(&ago(10 * MINUTE)),
    );
    db.job("dead1", "md1", "dead", &ago(0), None);
    db.job("dead2", "md2", "dead", &ago(0), None);

    let d = diagnostics(&t).await;
    assert_score(&d, "queue", 0.0, "all queue deductions");
    assert_score(&d, "storage", 0.7, "6 of 18 tombstones");
    assert_eq!(d["index"]["liveMemories"], 12, "{:#}", d["index"]);
    assert_eq!(d["index"]["ftsRows"], 11, "{:#}", d["index"]);
    assert_score(&d, "index", 0.2, "FTS mismatch and no vectors");
    assert_score(&d, "mutation", 0.7, "6 recovers");
    assert_score(&d, "duplicate", 0.5, "3 of 12 duplicates");
    assert_eq!(d["composite"]["status"], "unhealthy", "{d:#}");
    assert!(d["composite"]["score"].as_f64().unwrap() < 0.5);
    let s = t.get("/api/status").await;
    assert_eq!(
        s.body["health"], d["composite"],
        "status health == composite"
    );

    // Full embedding coverage lifts the coverage deduction only.
    db.exec(
        "UPDATE memories SET embedding_model = 'test-model' WHERE is_deleted = 0",
        [],
    );
    let d = diagnostics_until(&t, "full coverage", |d| {
        d["index"]["embeddingCoverage"].as_f64() == Some(1.0)
    })
    .await;
    assert_score(&d, "index", 0.5, "FTS mismatch only");
    t.stop().await;
}

// ===========================================================================
// 3. /metrics
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_is_valid_prometheus_text_with_requests_memories_jobs_and_clients() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    const N: usize = 7;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(t.remember(&format!("metrics fact {i}")).await);
    }
    delete(&t, &ids[0]).await;
    delete(&t, &ids[1]).await;
    assert_eq!(
        t.get(&format!("/api/memory/{UNKNOWN_ID}")).await.status,
        404
    );
    assert_eq!(
        t.post("/api/memory/recall", json!({ "query": "metrics" }))
            .await
            .status,
        200
    );
    for (i, status) in [
        "pending",
        "pending",
        "pending",
        "leased",
        "dead",
        "dead",
        "completed",
        "failed",
    ]
    .iter()
    .enumerate()
    {
        let leased = (*status == "leased").then(|| ago(0));
        db.job(
            &format!("j{i}"),
            &format!("m{i}"),
            status,
            &ago(0),
            leased.as_deref(),
        );
    }

    let e = metrics(&t, None).await;
    let req = "signet_http_requests_total";
    assert_eq!(e.types[req], "counter");
    assert_eq!(
        e.must(
            req,
            &[
                ("method", "POST"),
                ("route", "/api/memory/remember"),
                ("status", "200")
            ]
        ),
        N as f64
    );
    assert_eq!(
        e.must(
            req,
            &[
                ("method", "DELETE"),
                ("route", "/api/memory/:id"),
                ("status", "200")
            ]
        ),
        2.0
    );
    assert_eq!(
        e.must(
            req,
            &[
                ("method", "GET"),
                ("route", "/api/memory/:id"),
                ("status", "404")
            ]
        ),
        1.0
    );
    assert!(
        !e.samples.iter().any(|s| ids
            .iter()
            .any(|id| s.labels.values().any(|v| v.contains(id.as_str())))),
        "ids must be collapsed in route labels"
    );
    let hist = "signet_http_request_duration_seconds";
    assert_eq!(e.types[hist], "histogram");
    assert_eq!(
        e.must(
            &format!("{hist}_count"),
            &[("method", "POST"), ("route", "/api/memory/remember")]
        ),
        N as f64
    );
    assert_eq!(e.types["signet_memories"], "gauge");
    assert_eq!(
        e.must("signet_memories", &[("state", "live")]),
        (N - 2) as f64
    );
    assert_eq!(e.must("signet_memories", &[("state", "deleted")]), 2.0);
    for (status, n) in [
        ("pending", 3.0),
        ("leased", 1.0),
        ("dead", 2.0),
        ("completed", 1.0),
        ("failed", 1.0),
    ] {
        assert_eq!(
            e.must("signet_queue_jobs", &[("status", status)]),
            n,
            "{status}"
        );
    }
    assert_eq!(e.must("signet_sse_clients", &[]), 0.0);
    assert_eq!(e.types["signet_rate_limit_rejections_total"], "counter");
    assert_eq!(e.must("signet_rate_limit_rejections_total", &[]), 0.0);
    assert_eq!(e.types["signet_actor_restarts_total"], "counter");
    assert_eq!(e.must("signet_actor_restarts_total", &[]), 0.0);

    // A connected SSE client shows in the gauge.
    let sse = builder(&t, "GET", "/sse", None, None, &[])
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = metrics(&t, None).await;
        if e.must("signet_sse_clients", &[]) == 1.0 {
            // The earlier scrape is itself counted now.
            assert!(
                e.must(
                    req,
                    &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
                ) >= 1.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "SSE client never counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sse);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_team_mode_metrics_needs_the_diagnostics_permission_unless_public() {
    let t = spawn_with(|c| {
        quiet_team(c);
        c.settings.auth.rate_limits.forget = limit(1);
    })
    .await;
    let op = token(&t, Role::Operator, "ops", Scope::default());
    let agent = token(&t, Role::Agent, "bot", Scope::default());

    let (status, _, body) = get_text(&t, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    let v: Value = serde_json::from_str(&body).expect("401 is JSON");
    assert!(v["error"].is_string());
    let (status, _, body) = get_text(&t, "/metrics", Some(&agent)).await;
    assert_eq!(status, 403, "agent lacks diagnostics: {body}");
    let v: Value = serde_json::from_str(&body).expect("403 is JSON");
    assert!(v["error"].is_string());
    metrics(&t, Some(&op)).await;
    metrics(&t, Some(&token(&t, Role::Admin, "root", Scope::default()))).await;
    // Diagnostics follow the same permission.
    let r = request_60s(&t, "GET", "/api/diagnostics", None, Some(&op), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = request_60s(&t, "GET", "/api/diagnostics/queue", None, Some(&agent), &[]).await;
    assert_error_ctx(&r, 403, "agent diagnostics");

    // One ledger rejection: the agent may forget once a minute.
    let mut ids = Vec::new();
    for i in 0..2 {
        let r = request_60s(
            &t,
            "POST",
            "/api/memory/remember",
            Some(json!({ "content": format!("team metrics {i}") })),
            Some(&agent),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let codes: Vec<u16> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(
                request_60s(
                    &t,
                    "DELETE",
                    &format!("/api/memory/{id}?reason=test"),
                    None,
                    Some(&agent),
                    &[],
                )
                .await
                .status,
            );
        }
        v
    };
    assert_eq!(codes, [200, 429]);

    let e = metrics(&t, Some(&op)).await;
    assert_eq!(e.must("signet_rate_limit_rejections_total", &[]), 1.0);
    let req = "signet_http_requests_total";
    for (method, route, status, n) in [
        ("GET", "/metrics", "401", 1.0),
        ("GET", "/metrics", "403", 1.0),
        ("GET", "/metrics", "200", 2.0),
        ("DELETE", "/api/memory/:id", "200", 1.0),
        ("DELETE", "/api/memory/:id", "429", 1.0),
    ] {
        assert_eq!(
            e.must(
                req,
                &[("method", method), ("route", route), ("status", status)]
            ),
            n,
            "{method} {route} {status}"
        );
    }
    assert_eq!(e.must("signet_memories", &[("state", "live")]), 1.0);
    t.stop().await;

    // metrics.public opens /metrics (only /metrics) to token-less scrapers.
    let t = spawn_with(|c| {
        quiet_team(c);
        c.settings.metrics.public = true;
    })
    .await;
    metrics(&t, None).await;
    let r = t.get("/api/diagnostics").await;
    assert_error_ctx(&r, 401, "diagnostics stay closed");
    t.stop().await;
}

// ===========================================================================
// 4. repairs
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_dead_jobs_and_release_leases_move_jobs_back_to_pending_with_audit_rows() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    for i in 0..3 {
        db.job(
            &format!("dead{i}"),
            &format!("md{i}"),
            "dead",
            &ago(MINUTE),
            None,
        );
    }
    for i in 0..2 {
        db.job(
            &format!("leased{i}"),
            &format!("ml{i}"),
            "leased",
            &ago(20 * MINUTE),
            Some(&ago(20 * MINUTE)),
        );
    }
    db.job("pending0", "mp0", "pending", &ago(0), None);
    db.job("done0", "mc0", "completed", &ago(0), None);

    let r = repair(&t, "requeue-dead-jobs", json!({})).await;
    assert_eq!(affected(&r), 3, "{r:?}");
    assert_audited(&db, &r, 0);
    assert_eq!(db.jobs("dead"), 0);
    assert_eq!(db.jobs("pending"), 4);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM memory_jobs WHERE id LIKE 'dead%' AND attempts = 0"),
        3,
        "requeued jobs get fresh attempts"
    );

    // The alias answers under the canonical name.
    let r = repair(&t, "requeue-dead", json!({})).await;
    assert_eq!(affected(&r), 0, "{r:?}");
    assert_audited(&db, &r, 1);

    let r = repair(&t, "release-leases", json!({})).await;
    assert_eq!(affected(&r), 2, "{r:?}");
    assert_audited(&db, &r, 2);
    assert_eq!(db.jobs("leased"), 0);
    assert_eq!(db.jobs("pending"), 6);
    assert_eq!(db.jobs("completed"), 1, "completed jobs untouched");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM memory_jobs WHERE leased_at IS NOT NULL"),
        0
    );
    let d = diagnostics(&t).await;
    assert_eq!(d["queue"]["staleLeases"], 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_dead_jobs_does_not_fail_when_the_memory_already_has_an_active_job_of_that_kind() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    // An extract job died earlier; a new one for the same memory is pending.
    db.job("died", "m-shared", "dead", &ago(MINUTE), None);
    db.job("retry", "m-shared", "pending", &ago(0), None);
    db.job("other-dead", "m-other", "dead", &ago(MINUTE), None);
    let r = t.post("/api/repair/requeue-dead-jobs", json!({})).await;
    assert_eq!(
        r.status, 200,
        "requeue-dead-jobs must not fail on a memory that already has an active job: {:?}",
        r.body
    );
    assert_eq!(r.body["success"], true, "{:?}", r.body);
    assert!(db.jobs("pending") >= 2, "the other dead job is requeued");
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM memory_jobs WHERE memory_id = 'm-shared' AND status IN ('pending', 'leased')"
        ),
        1,
        "one active job per memory and kind"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_embed_counts_on_a_dry_run_and_queues_embed_jobs_batch_by_batch() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(t.remember(&format!("needs a vector {i}")).await);
    }
    let embed_jobs = |db: &Db| db.count("SELECT COUNT(*) FROM memory_jobs WHERE kind = 'embed'");
    let gaps = t.get("/api/repair/embedding-gaps").await;
    assert_eq!(gaps.status, 200, "{:?}", gaps.body);
    assert_eq!(gaps.body["count"], 3);
    assert_eq!(gaps.body["ids"], json!(ids));

    let r = repair(&t, "re-embed", json!({ "dryRun": true })).await;
    assert_eq!(affected(&r), 3, "{r:?}");
    assert_audited(&db, &r, 0);
    assert_eq!(embed_jobs(&db), 0, "a dry run queues nothing");

    assert_error_ctx(
        &t.post("/api/repair/re-embed", json!({ "batchSize": 0 }))
            .await,
        400,
        "batchSize 0",
    );

    let r = repair(&t, "re-embed", json!({ "batchSize": 2 })).await;
    assert_eq!(affected(&r), 2, "{r:?}");
    assert_audited(&db, &r, 1);
    assert_eq!(embed_jobs(&db), 2);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM memory_jobs WHERE kind = 'embed' AND status = 'pending'"),
        2
    );
    // The next batch takes the memories not queued yet.
    let r = repair(&t, "re-embed", json!({ "batchSize": 2 })).await;
    assert_eq!(
        affected(&r),
        1,
        "a second re-embed batch must queue the remaining gap, not re-select queued ones: {r:?}"
    );
    assert_eq!(embed_jobs(&db), 3, "every gap has an embed job");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_orphans_removes_vectors_and_queued_jobs_without_a_live_memory() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let live = t.remember("a memory with a vector").await;
    let live_row = db.rowid(&live);
    db.add_vector(live_row);
    let orphan_row = live_row + 10_000;
    db.add_vector(orphan_row);
    db.job("ghost-pending", "ghost", "pending", &ago(0), None);
    db.job("ghost-leased", "ghost2", "leased", &ago(0), Some(&ago(0)));
    db.job("ghost-completed", "ghost3", "completed", &ago(0), None);
    db.job("live-pending", &live, "pending", &ago(0), None);

    let r = repair(&t, "clean-orphans", json!({})).await;
    assert_eq!(affected(&r), 2, "one vector and one job: {r:?}");
    assert_audited(&db, &r, 0);
    assert!(!db.has_vector(orphan_row), "orphaned vector removed");
    assert!(db.has_vector(live_row), "the live memory's vector stays");
    assert!(!db.job_exists("ghost-pending"));
    for kept in ["ghost-leased", "ghost-completed", "live-pending"] {
        assert!(db.job_exists(kept), "{kept} stays");
    }
    let r = repair(&t, "clean-orphans", json!({})).await;
    assert_eq!(affected(&r), 0, "{r:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deduplicate_keeps_the_oldest_cross_project_copy_and_a_dry_run_changes_nothing() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let a = remember_in(&t, "the deploy key lives in the vault", "a").await;
    let b = remember_in(&t, "the deploy key lives in the vault", "b").await;
    assert_ne!(a, b, "different projects keep separate copies");
    let other = remember_in(&t, "something else entirely", "a").await;

    let stats = t.get("/api/repair/dedup-stats").await;
    assert_eq!(stats.status, 200, "{:?}", stats.body);
    assert_eq!(stats.body["duplicates"], 1, "{:?}", stats.body);
    assert_eq!(stats.body["duplicateGroups"], 1);

    let r = repair(&t, "deduplicate", json!({ "dryRun": true })).await;
    assert_eq!(affected(&r), 1, "{r:?}");
    assert_audited(&db, &r, 0);
    for id in [&a, &b, &other] {
        let m = t.get(&format!("/api/memory/{id}")).await;
        assert_eq!(m.body["is_deleted"], 0, "dry run deleted {id}");
        assert_eq!(m.body["version"], 1, "dry run touched {id}");
    }

    let r = repair(&t, "deduplicate", json!({})).await;
    assert_eq!(affected(&r), 1, "{r:?}");
    assert_audited(&db, &r, 1);
    assert_eq!(
        t.get(&format!("/api/memory/{a}")).await.body["is_deleted"],
        0,
        "oldest stays"
    );
    // The newer copy is a tombstone (GET hides tombstones), with a history row.
    assert_error_ctx(
        &t.get(&format!("/api/memory/{b}")).await,
        404,
        "newer copy removed",
    );
    assert_eq!(
        db.count_p("SELECT is_deleted FROM memories WHERE id = ?1", [&b]),
        1,
        "newer copy is a tombstone"
    );
    assert_eq!(
        db.count_p(
            "SELECT COUNT(*) FROM memory_history WHERE memory_id = ?1 AND event = 'deleted'",
            [&b]
        ),
        1,
        "the removal is in the copy's history"
    );
    assert_eq!(
        recover(&t, &b, json!({ "reason": "test" })).await.status,
        200,
        "a deduplicated copy can be recovered"
    );
    delete(&t, &b).await;
    assert_eq!(
        t.get(&format!("/api/memory/{other}")).await.body["is_deleted"],
        0
    );
    assert_eq!(db.fts_rows(), db.live(), "index follows the removal");
    let stats = t.get("/api/repair/dedup-stats").await;
    assert_eq!(stats.body["duplicates"], 0, "{:?}", stats.body);
    let r = repair(&t, "deduplicate", json!({})).await;
    assert_eq!(affected(&r), 0, "{r:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_orphans_keeps_the_vector_of_a_tombstone_that_can_still_be_recovered() {
    let t = spawn_quiet().await;
    let db = Db::open(&t);
    let id = t.remember("deleted yesterday, wanted back today").await;
    let row = db.rowid(&id);
    db.add_vector(row);
    db.exec(
        "UPDATE memories SET embedding_model = 'test-model' WHERE id = ?1",
        [&id],
    );
    delete(&t, &id).await;
    // Not an orphan: the memory row exists and is recoverable for 30 days;
    // its vector goes only when the sweeper hard-deletes it.
    let r = repair(&t, "clean-orphans", json!({})).await;
    assert!(
        db.has_vector(row),
        "clean-orphans removed the vector of a recoverable tombstone ({r:?})"
    );
    assert_eq!(affected(&r), 0, "{r:?}");
    assert_eq!(
        recover(&t, &id, json!({ "reason": "test" })).await.status,
        200
    );
    assert!(db.has_vector(row), "the recovered memory has its vector");
    t.stop().await;
}

/// Read an SSE stream (bounded) until its text satisfies `done`.
async fn read_sse_until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    what: &str,
    done: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(buf) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(c))) => buf.push_str(&String::from_utf8_lossy(&c)),
            Ok(Ok(None)) => panic!("{what}: stream ended; got {buf:?}"),
            Ok(Err(e)) => panic!("{what}: {e}; got {buf:?}"),
            Err(_) => panic!("{what}: not seen within 5 s; got {buf:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deduplicate_announces_the_copies_it_deletes_as_memory_deleted_events() {
    let t = spawn_quiet().await;
    remember_in(&t, "an event-worthy duplicate", "a").await;
    let b = remember_in(&t, "an event-worthy duplicate", "b").await;
    let control = t.remember("deleted the ordinary way").await;
    let mut sse = builder(&t, "GET", "/sse?types=memory.deleted", None, None, &[])
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status().as_u16(), 200);
    let mut buf = String::new();
    // Control: an ordinary delete is announced on this stream.
    delete(&t, &control).await;
    read_sse_until(&mut sse, &mut buf, "ordinary delete event", |b| {
        b.contains(control.as_str())
    })
    .await;
    let r = repair(&t, "deduplicate", json!({})).await;
    assert_eq!(affected(&r), 1, "{r:?}");
    read_sse_until(
        &mut sse,
        &mut buf,
        "memory.deleted for the deduplicated copy",
        |text| text.contains(b.as_str()),
    )
    .await;
    drop(sse);
    t.stop().await;
}

const ACTIONS: [&str; 8] = [
    "requeue-dead-jobs",
    "requeue-dead",
    "release-leases",
    "check-fts",
    "re-embed",
    "clean-orphans",
    "deduplicate",
    "retention-sweep",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repairs_are_404_and_in_team_mode_repairs_are_for_admins_with_agents_throttled() {
    let t = spawn_quiet().await;
    assert_error_ctx(
        &t.post("/api/repair/bogus", json!({})).await,
        404,
        "unknown action",
    );
    assert_error_ctx(&t.get("/api/repair/bogus").await, 404, "unknown report");
    t.stop().await;

    let t = spawn_with(|c| {
        quiet_team(c);
        c.settings.auth.rate_limits.admin = limit(2);
    })
    .await;
    let db = Db::open(&t);
    let root = token(&t, Role::Admin, "root", Scope::default());
    for (role, sub) in [
        (Role::Operator, "ops"),
        (Role::Agent, "bot"),
        (Role::Readonly, "ro"),
    ] {
        let tok = token(&t, role, sub, Scope::default());
        for action in ACTIONS {
            let r = request_60s(
                &t,
                "POST",
                &format!("/api/repair/{action}"),
                Some(json!({})),
                Some(&tok),
                &[],
            )
            .await;
            assert_error_ctx(&r, 403, &format!("{sub} POST {action}"));
        }
        for report in ["embedding-gaps", "dedup-stats"] {
            let r = request_60s(
                &t,
                "GET",
                &format!("/api/repair/{report}"),
                None,
                Some(&tok),
                &[],
            )
            .await;
            assert_error_ctx(&r, 403, &format!("{sub} GET {report}"));
        }
    }
    let r = request_60s(
        &t,
        "POST",
        "/api/repair/check-fts",
        Some(json!({})),
        None,
        &[],
    )
    .await;
    assert_error_ctx(&r, 401, "no token");
    assert!(
        db.repair_audits().is_empty(),
        "refused repairs write no audit row"
    );

    // An admin acting as an operator is not throttled.
    for _ in 0..4 {
        let r = request_60s(
            &t,
            "POST",
            "/api/repair/check-fts",
            Some(json!({})),
            Some(&root),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    for report in ["embedding-gaps", "dedup-stats"] {
        let r = request_60s(
            &t,
            "GET",
            &format!("/api/repair/{report}"),
            None,
            Some(&root),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // An admin token used by an agent is held to the admin limit.
    let bot_admin = token(&t, Role::Admin, "autonomous-admin", Scope::default());
    let agent_hdr = [("x-signet-actor-type", "agent")];
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            request_60s(
                &t,
                "POST",
                "/api/repair/check-fts",
                Some(json!({})),
                Some(&bot_admin),
                &agent_hdr,
            )
            .await
            .status,
        );
    }
    assert_eq!(codes, [200, 200, 429], "agents get the admin limit");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutations_frozen_repairs_are_503_while_reports_still_work() {
    let t = spawn_with(|c| {
        quiet(c);
        c.settings.memory.pipeline_v2.mutations_frozen = true;
    })
    .await;
    let db = Db::open(&t);
    for action in ACTIONS {
        let r = t
            .post(&format!("/api/repair/{action}"), json!({ "repair": true }))
            .await;
        assert_error_ctx(&r, 503, &format!("frozen {action}"));
    }
    for report in ["embedding-gaps", "dedup-stats"] {
        let r = t.get(&format!("/api/repair/{report}")).await;
        assert_eq!(r.status, 200, "{report}: {:?}", r.body);
    }
    assert_eq!(t.get("/api/diagnostics").await.status, 200);
    assert_eq!(t.get("/api/diagnostics/queue").await.status, 200);
    assert!(
        db.repair_audits().is_empty(),
        "frozen repairs write nothing"
    );
    t.stop().await;
}

// ===========================================================================
// 5. analytics
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_report_latency_usage_and_errors_of_real_traffic() {
    let t = spawn_quiet().await;
    const REMEMBERS: u64 = 6;
    const RECALLS: u64 = 4;
    const PATCHES: u64 = 3;
    let mut ids = Vec::new();
    for i in 0..REMEMBERS {
        ids.push(t.remember(&format!("analytics fact number {i}")).await);
    }
    for _ in 0..RECALLS {
        let r = t
            .post("/api/memory/recall", json!({ "query": "analytics" }))
            .await;
        assert_eq!(r.status, 200);
    }
    for id in ids.iter().take(PATCHES as usize) {
        let r = t
            .send(
                "PATCH",
                &format!("/api/memory/{id}"),
                json!({ "content": format!("edited analytics fact {id}"), "reason": "edit" }),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert_eq!(
        t.get(&format!("/api/memory/{UNKNOWN_ID}")).await.status,
        404
    );
    assert_eq!(t.post("/api/memory/remember", json!({})).await.status, 400);

    // Latency per operation.
    let r = t.get("/api/analytics/latency").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    for (op, n) in [
        ("remember", REMEMBERS),
        ("recall", RECALLS),
        ("mutate", PATCHES),
    ] {
        let l = &r.body[op];
        assert_eq!(l["count"].as_u64(), Some(n), "{op}: {l:?}");
        let (p50, p95, p99) = (
            l["p50"].as_f64().expect("p50"),
            l["p95"].as_f64().expect("p95"),
            l["p99"].as_f64().expect("p99"),
        );
        assert!(0.0 <= p50 && p50 <= p95 && p95 <= p99, "{op}: {l:?}");
        assert!(p99 > 0.0 && p99 < 60_000.0, "{op}: p99 {p99} ms");
        let mean = l["mean"].as_f64().expect("mean");
        assert!(mean > 0.0 && mean <= p99 + 0.001, "{op}: {l:?}");
    }

    // Usage per endpoint, ids collapsed.
    let r = t.get("/api/analytics/usage").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ep = &r.body["endpoints"];
    let remember = &ep["POST /api/memory/remember"];
    assert_eq!(remember["count"], REMEMBERS + 1, "{remember:?}");
    assert_eq!(remember["errors"], 1, "{remember:?}");
    assert!(remember["totalLatencyMs"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(ep["PATCH /api/memory/:id"]["count"], PATCHES, "{ep:#}");
    assert_eq!(ep["POST /api/memory/recall"]["count"], RECALLS);
    assert_eq!(ep["GET /api/memory/:id"]["count"], 1);
    assert_eq!(ep["GET /api/memory/:id"]["errors"], 1);
    let keys: Vec<&String> = ep.as_object().expect("endpoints").keys().collect();
    for k in &keys {
        assert!(
            !ids.iter().any(|id| k.contains(id.as_str())) && !k.contains(UNKNOWN_ID),
            "route {k} carries an id"
        );
    }
    assert!(r.body["actors"].is_object(), "{:?}", r.body);

    // Errors, filtered by stage.
    let r = t.get("/api/analytics/errors").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let errors = r.body["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e["status"] == 404
            && e["stage"] == "request"
            && e["route"] == "GET /api/memory/:id"),
        "{errors:?}"
    );
    assert!(errors
        .iter()
        .any(|e| e["status"] == 400 && e["stage"] == "request"));
    assert!(
        r.body["summary"]["byStage"]["request"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "{:?}",
        r.body
    );
    assert!(
        r.body["summary"]["total"].as_u64().unwrap_or(0) >= 2,
        "{:?}",
        r.body
    );

    let r = t.get("/api/analytics/errors?stage=request").await;
    let errs = r.body["errors"].as_array().expect("errors");
    assert!(
        errs.len() >= 2 && errs.iter().all(|e| e["stage"] == "request"),
        "{errs:?}"
    );
    let r = t.get("/api/analytics/errors?stage=auth").await;
    assert_eq!(r.body["errors"], json!([]), "no auth errors in local mode");
    let r = t.get("/api/analytics/errors?stage=request&limit=1").await;
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(1));
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = t
        .get(&format!("/api/analytics/errors?since={future}"))
        .await;
    assert_eq!(r.body["errors"], json!([]), "since filters");

    let r = t.get("/api/analytics/logs").await;
    assert_eq!(r.status, 200);
    assert_error_ctx(&t.get("/api/analytics/nope").await, 404, "unknown view");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_team_mode_analytics_count_actors_by_token_sub_and_need_the_permission() {
    let t = spawn_with(quiet_team).await;
    let alice = token(&t, Role::Admin, "alice", Scope::default());
    let bob = token(&t, Role::Operator, "bob", Scope::default());
    let carol = token(&t, Role::Agent, "carol", Scope::default());
    for i in 0..3 {
        let r = request_60s(
            &t,
            "POST",
            "/api/memory/remember",
            Some(json!({ "content": format!("alice fact {i}") })),
            Some(&alice),
            &[("x-signet-actor", "mallory")],
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = request_60s(
        &t,
        "POST",
        "/api/memory/recall",
        Some(json!({ "query": "fact" })),
        Some(&bob),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request_60s(&t, "GET", "/api/analytics/usage", None, Some(&carol), &[]).await;
    assert_error_ctx(&r, 403, "agents lack analytics");
    let r = request_60s(&t, "GET", "/api/analytics/usage", None, None, &[]).await;
    assert_error_ctx(&r, 401, "no token");

    let r = request_60s(&t, "GET", "/api/analytics/usage", None, Some(&bob), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let actors = &r.body["actors"];
    assert_eq!(actors["alice"], 3, "{actors:?}");
    assert_eq!(actors["bob"], 2, "recall + this usage call: {actors:?}");
    assert!(
        actors.get("mallory").is_none(),
        "headers never name the actor: {actors:?}"
    );
    let r = request_60s(
        &t,
        "GET",
        "/api/analytics/errors?stage=auth",
        None,
        Some(&bob),
        &[],
    )
    .await;
    let errs = r.body["errors"].as_array().expect("errors");
    assert!(
        errs.iter().any(|e| e["status"] == 401) && errs.iter().any(|e| e["status"] == 403),
        "401 and 403 are auth-stage errors: {errs:?}"
    );
    t.stop().await;
}
