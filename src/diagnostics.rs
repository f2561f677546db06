//! Health diagnostics: six scored domains and their weighted composite.
//!
//! Each domain starts at 1.0 and loses the deductions of the contract:
//! queue (pending > 50 −0.3, dead rate > 1% −0.3, oldest pending > 300 s
//! −0.2, stale leases −0.2), storage (tombstones > 30% −0.3, a failed
//! integrity check −1.0), index (keyword rows ≠ live rows −0.5, embedding
//! coverage < 80% −0.3), provider (success rate of the last calls),
//! mutation (> 5 recovers in 7 days −0.3), duplicate (ratio > 10% −0.5,
//! > 5% −0.3). Computed from one read connection; the caller caches it.

use rusqlite::Connection;
use serde_json::{json, Value};

use crate::store::StoreError;

/// Domain names, in report order.
pub const DOMAINS: [&str; 6] = [
    "queue",
    "storage",
    "index",
    "provider",
    "mutation",
    "duplicate",
];

/// Composite weights (they sum to 0.84; the remainder is spread
/// proportionally, i.e. the weighted mean is divided by the sum).
pub const WEIGHTS: [(&str, f64); 6] = [
    ("queue", 0.25),
    ("storage", 0.10),
    ("index", 0.15),
    ("provider", 0.22),
    ("mutation", 0.08),
    ("duplicate", 0.04),
];

/// `healthy` ≥ 0.8, `degraded` ≥ 0.5, else `unhealthy`.
pub fn status_of(score: f64) -> &'static str {
    if score >= 0.8 {
        "healthy"
    } else if score >= 0.5 {
        "degraded"
    } else {
        "unhealthy"
    }
}

fn clamp(x: f64) -> f64 {
    (x.clamp(0.0, 1.0) * 100.0).round() / 100.0
}

/// What the embedding provider reports (the provider domain).
#[derive(Debug, Clone, Default)]
pub struct ProviderHealth {
    pub provider: String,
    pub available: bool,
    /// Calls measured (at most the last 100).
    pub calls: usize,
    /// Success rate over those calls.
    pub success_rate: Option<f64>,
    /// Why the provider is unavailable, if it is.
    pub error: Option<String>,
}

fn scalar(conn: &Connection, sql: &str) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(0))
}

/// Queue domain from the job table.
pub fn queue(conn: &Connection, now_secs: i64) -> Result<Value, StoreError> {
    let counts = crate::store::jobs::counts(conn)?;
    let total = counts.pending + counts.leased + counts.completed + counts.failed + counts.dead;
    let oldest: Option<String> = conn.query_row(
        "SELECT MIN(created_at) FROM memory_jobs WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )?;
    let oldest_age = oldest
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| now_secs - t.timestamp())
        .unwrap_or(0);
    let stale_before = crate::store::to_iso(
        chrono::DateTime::from_timestamp(now_secs - 300, 0).unwrap_or_default(),
    );
    let stale: i64 = conn.query_row(
        "SELECT COUNT(*) FROM memory_jobs WHERE status = 'leased' AND leased_at < ?1",
        [&stale_before],
        |r| r.get(0),
    )?;
    let dead_rate = if total > 0 {
        counts.dead as f64 / total as f64
    } else {
        0.0
    };
    let mut score = 1.0;
    if counts.pending > 50 {
        score -= 0.3;
    }
    if dead_rate > 0.01 {
        score -= 0.3;
    }
    if oldest_age > 300 {
        score -= 0.2;
    }
    if stale > 0 {
        score -= 0.2;
    }
    Ok(json!({
        "score": clamp(score), "pending": counts.pending, "leased": counts.leased,
        "completed": counts.completed, "failed": counts.failed, "dead": counts.dead,
        "deadRate": dead_rate, "oldestPendingSeconds": oldest_age, "staleLeases": stale,
    }))
}

/// Storage domain; `integrity` is the (possibly cached) integrity_check result.
pub fn storage(conn: &Connection, integrity: &str) -> Result<Value, StoreError> {
    let pages = scalar(conn, "PRAGMA page_count")?;
    let page_size = scalar(conn, "PRAGMA page_size")?;
    let total = scalar(conn, "SELECT COUNT(*) FROM memories")?;
    let deleted = scalar(conn, "SELECT COUNT(*) FROM memories WHERE is_deleted = 1")?;
    let ratio = if total > 0 {
        deleted as f64 / total as f64
    } else {
        0.0
    };
    let mut score = 1.0;
    if ratio > 0.3 {
        score -= 0.3;
    }
    if integrity != "ok" {
        score -= 1.0;
    }
    let free = scalar(conn, "PRAGMA freelist_count")?;
    let auto_vacuum = match scalar(conn, "PRAGMA auto_vacuum")? {
        0 => "none",
        1 => "full",
        _ => "incremental",
    };
    Ok(json!({
        "score": clamp(score), "dbSizeBytes": pages * page_size, "memories": total,
        "tombstones": deleted, "tombstoneRatio": ratio, "integrity": integrity,
        "freePages": free, "freeBytes": free * page_size, "autoVacuum": auto_vacuum,
    }))
}

/// Index domain: keyword index rows vs live rows, embedding coverage.
pub fn index(conn: &Connection, embeddings_expected: bool) -> Result<Value, StoreError> {
    let live = scalar(conn, "SELECT COUNT(*) FROM memories WHERE is_deleted = 0")?;
    let fts = scalar(conn, "SELECT COUNT(*) FROM memories_fts_docsize")?;
    let embedded = scalar(
        conn,
        "SELECT COUNT(*) FROM memories WHERE is_deleted = 0 AND embedding_model IS NOT NULL",
    )?;
    let coverage = if live > 0 {
        embedded as f64 / live as f64
    } else {
        1.0
    };
    let mut score = 1.0;
    if fts != live {
        score -= 0.5;
    }
    if embeddings_expected && coverage < 0.8 {
        score -= 0.3;
    }
    Ok(json!({
        "score": clamp(score), "liveMemories": live, "ftsRows": fts,
        "embedded": embedded, "embeddingCoverage": coverage,
    }))
}

/// Provider domain from recent call outcomes.
pub fn provider(p: &ProviderHealth) -> Value {
    let calls = p.calls;
    let (score, rate) = match p.success_rate {
        _ if p.provider == "none" => (1.0, Value::Null),
        // Nothing measured: an unavailable provider counts half.
        None => (if p.available { 1.0 } else { 0.5 }, Value::Null),
        Some(r) if !p.available => (r.min(0.5), json!(r)),
        Some(r) => (r, json!(r)),
    };
    json!({
        "score": clamp(score), "provider": p.provider, "available": p.available,
        "calls": calls, "successRate": rate, "error": p.error,
    })
}

/// Mutation domain: recovers over the last 7 days.
pub fn mutation(conn: &Connection, now_secs: i64) -> Result<Value, StoreError> {
    let since = crate::store::to_iso(
        chrono::DateTime::from_timestamp(now_secs - 7 * 86_400, 0).unwrap_or_default(),
    );
    let recovers: i64 = conn.query_row(
        "SELECT COUNT(*) FROM memory_history WHERE event = 'recovered' AND created_at >= ?1",
        [&since],
        |r| r.get(0),
    )?;
    let score = if recovers > 5 { 0.7 } else { 1.0 };
    Ok(json!({ "score": score, "recoversLast7Days": recovers }))
}

/// Duplicate domain: live rows whose content hash another live row shares.
pub fn duplicate(conn: &Connection) -> Result<Value, StoreError> {
    // The same figures `GET /api/repair/dedup-stats` reports.
    let stats = crate::store::maintenance::dedup_stats(conn)?;
    let dups = stats["duplicates"].as_i64().unwrap_or(0);
    let ratio = stats["ratio"].as_f64().unwrap_or(0.0);
    let score = if ratio > 0.10 {
        0.5
    } else if ratio > 0.05 {
        0.7
    } else {
        1.0
    };
    Ok(json!({ "score": score, "duplicates": dups, "ratio": ratio }))
}

/// Weighted composite of the domain scores.
pub fn composite(domains: &serde_json::Map<String, Value>) -> Value {
    let (mut sum, mut weights) = (0.0, 0.0);
    for (name, w) in WEIGHTS {
        if let Some(s) = domains.get(name).and_then(|d| d["score"].as_f64()) {
            sum += s * w;
            weights += w;
        }
    }
    let score = if weights > 0.0 {
        clamp(sum / weights)
    } else {
        0.0
    };
    json!({ "score": score, "status": status_of(score) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_is_the_normalised_weighted_mean() {
        let mut m = serde_json::Map::new();
        for d in DOMAINS {
            m.insert(d.into(), json!({"score": 1.0}));
        }
        assert_eq!(composite(&m)["score"], 1.0);
        m.insert("queue".into(), json!({"score": 0.0}));
        // 1 - 0.25/0.84
        assert_eq!(composite(&m)["score"], 0.7);
        assert_eq!(composite(&m)["status"], "degraded");
        m.insert("provider".into(), json!({"score": 0.0}));
        assert_eq!(composite(&m)["status"], "unhealthy");
    }

    #[test]
    fn provider_scores_by_success_rate() {
        let p = ProviderHealth {
            provider: "ollama".into(),
            available: true,
            calls: 4,
            success_rate: Some(0.75),
            error: None,
        };
        assert_eq!(provider(&p)["score"], 0.75);
        let none = ProviderHealth {
            provider: "none".into(),
            ..Default::default()
        };
        assert_eq!(provider(&none)["score"], 1.0);
        let down = ProviderHealth {
            provider: "native".into(),
            available: false,
            ..Default::default()
        };
        assert_eq!(provider(&down)["score"], 0.5);
        let failing = ProviderHealth {
            provider: "openai".into(),
            available: false,
            calls: 10,
            success_rate: Some(0.9),
            error: Some("HTTP 500".into()),
        };
        assert_eq!(
            provider(&failing)["score"],
            0.5,
            "unavailable caps the score"
        );
    }
}
