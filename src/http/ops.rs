//! Operational routes: health and status.

use std::sync::atomic::Ordering;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{self, Permission};
use super::{boxed, json, with_state, AppState};
use crate::memory::Caller;

/// GET /health — open in every mode; the CLI's liveness probe.
pub fn health(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("health")
            .and(warp::get())
            .and(with_state(st))
            .map(|st: AppState| {
                json(&json!({
                    "status": "healthy",
                    "uptime": st.started.elapsed().as_secs_f64(),
                    "pid": std::process::id(),
                    "version": env!("CARGO_PKG_VERSION"),
                    "port": st.port,
                    "agentsDir": st.config.workspace,
                    "db": st.registry.writer().is_some(),
                }))
            }),
    )
}

/// GET /api/status
pub fn status(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "status")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(with_state(st))
            .and_then(|_caller: Caller, st: AppState| async move {
                let composite = diagnostics_report(&st)
                    .await
                    .ok()
                    .map(|r| r["composite"].clone());
                let c = &st.config;
                let p = &c.settings.memory.pipeline_v2;
                let e = &c.settings.embedding;
                let w = &st.writer_stats;
                let writer_up = st.registry.writer().is_some();
                let health = match (writer_up, composite) {
                    (false, _) => json!({ "score": 0.0, "status": "unhealthy" }),
                    (true, Some(c)) => c,
                    (true, None) => json!({ "score": null, "status": "unknown" }),
                };
                Ok::<_, std::convert::Infallible>(json(&json!({
                    "status": "running",
                    "version": env!("CARGO_PKG_VERSION"),
                    "pid": std::process::id(),
                    "uptime": st.started.elapsed().as_secs_f64(),
                    "startedAt": st.started_at,
                    "port": st.port,
                    "host": c.host,
                    "bindHost": c.bind,
                    "agentsDir": c.workspace,
                    "memoryDb": c.db_path(),
                    "pipelineV2": {
                        "enabled": p.enabled,
                        "shadowMode": p.shadow_mode,
                        "mutationsFrozen": p.mutations_frozen,
                        "graphEnabled": p.graph_enabled,
                        "autonomousEnabled": p.autonomous_enabled,
                        "extractionModel": p.extraction.model,
                    },
                    "health": health,
                    "embedding": {
                        "provider": e.provider,
                        "model": e.model,
                        "dimensions": e.dimensions,
                        "available": st.memories.embedder().status().available,
                        "state": st.memories.embedder().status().state,
                        "error": st.memories.embedder().status().error,
                    },
                    "writer": {
                        "running": writer_up,
                        "batches": w.batches.load(Ordering::Relaxed),
                        "ops": w.ops.load(Ordering::Relaxed),
                        "meanBatch": w.mean_batch(),
                        "maxBatch": w.max_batch.load(Ordering::Relaxed),
                        "commitFailures": w.commit_failures.load(Ordering::Relaxed),
                        "fault": w.fault().map(|f| f.as_str()),
                        "busyMs": w.busy_ns.load(Ordering::Relaxed) / 1_000_000,
                        "commitMs": w.commit_ns.load(Ordering::Relaxed) / 1_000_000,
                        "restarts": st.restarts.load(Ordering::Relaxed),
                    },
                })))
            }),
    )
}

/// Diagnostics are cached this long, so polling is cheap.
const DIAGNOSTICS_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// `integrity_check` reads the whole file; it is re-run at most this often.
const INTEGRITY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The last diagnostics report and integrity result.
#[derive(Default)]
pub struct DiagnosticsCache {
    report: std::sync::Mutex<Option<(std::time::Instant, serde_json::Value)>>,
    integrity: std::sync::Mutex<Option<(std::time::Instant, String)>>,
}

/// Build (or reuse) the full diagnostics report.
pub async fn diagnostics_report(
    st: &AppState,
) -> Result<serde_json::Value, crate::memory::MemoryError> {
    if let Ok(g) = st.diagnostics.report.lock() {
        if let Some((at, v)) = g.as_ref() {
            if at.elapsed() < DIAGNOSTICS_TTL {
                return Ok(v.clone());
            }
        }
    }
    let cached_integrity = st.diagnostics.integrity.lock().ok().and_then(|g| {
        g.as_ref()
            .filter(|(at, _)| at.elapsed() < INTEGRITY_TTL)
            .map(|(_, s)| s.clone())
    });
    let e = &st.config.settings.embedding;
    let p = st.memories.embedder().status();
    let provider = crate::diagnostics::ProviderHealth {
        provider: e.provider.clone(),
        available: p.available,
        calls: p.calls.min(100) as usize,
        success_rate: p.success_rate,
        error: p.error,
    };
    let embeddings_expected = e.provider != "none";
    let fault = st.writer_stats.fault();
    let (report, integrity) = st
        .memories
        .reads()
        .read(move |c| {
            let integrity = match cached_integrity {
                Some(s) => s,
                None => c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?,
            };
            let now = chrono::Utc::now().timestamp();
            let mut m = serde_json::Map::new();
            m.insert("queue".into(), crate::diagnostics::queue(c, now)?);
            m.insert(
                "storage".into(),
                crate::diagnostics::storage(c, &integrity)?,
            );
            m.insert(
                "index".into(),
                crate::diagnostics::index(c, embeddings_expected)?,
            );
            m.insert("provider".into(), crate::diagnostics::provider(&provider));
            m.insert("mutation".into(), crate::diagnostics::mutation(c, now)?);
            m.insert("duplicate".into(), crate::diagnostics::duplicate(c)?);
            // A store that cannot take writes is unhealthy storage.
            if let (Some(f), Some(storage)) = (fault, m.get_mut("storage")) {
                storage["fault"] = json!(f.as_str());
                storage["score"] = json!(0.0);
            }
            // Every domain carries its status beside its score (Signet's shape).
            for d in m.values_mut() {
                if let Some(score) = d["score"].as_f64() {
                    d["status"] = json!(crate::diagnostics::status_of(score));
                }
            }
            let composite = crate::diagnostics::composite(&m);
            m.insert("composite".into(), composite);
            m.insert("timestamp".into(), json!(crate::store::now_iso()));
            Ok((serde_json::Value::Object(m), integrity))
        })
        .await?;
    if let Ok(mut g) = st.diagnostics.integrity.lock() {
        if g.as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= INTEGRITY_TTL)
        {
            *g = Some((std::time::Instant::now(), integrity));
        }
    }
    if let Ok(mut g) = st.diagnostics.report.lock() {
        *g = Some((std::time::Instant::now(), report.clone()));
    }
    Ok(report)
}

/// GET /api/diagnostics and GET /api/diagnostics/:domain
pub fn diagnostics(st: AppState) -> BoxedFilter<(Response,)> {
    let all = warp::path!("api" / "diagnostics").map(|| None);
    let one = warp::path!("api" / "diagnostics" / String).map(Some);
    boxed(
        all.or(one)
            .unify()
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(with_state(st))
            .and_then(
                |domain: Option<String>, _caller: Caller, st: AppState| async move {
                    if let Some(d) = &domain {
                        if !crate::diagnostics::DOMAINS.contains(&d.as_str()) {
                            return super::error::reply::<()>(Err(
                                crate::memory::MemoryError::BadRequest(format!(
                                    "unknown diagnostics domain '{d}'; one of {}",
                                    crate::diagnostics::DOMAINS.join(", ")
                                )),
                            ));
                        }
                    }
                    let report = diagnostics_report(&st).await;
                    super::error::reply(report.map(|r| match domain {
                        // Signet's shape: the domain object unwrapped (`score`
                        // and `status` top-level); ours adds `timestamp`,
                        // `domain` and, as before, the object under its name.
                        Some(d) => {
                            let mut out = match &r[d.as_str()] {
                                serde_json::Value::Object(m) => m.clone(),
                                _ => serde_json::Map::new(),
                            };
                            out.insert("timestamp".into(), r["timestamp"].clone());
                            out.insert("domain".into(), json!(d));
                            out.insert(d.clone(), r[d.as_str()].clone());
                            serde_json::Value::Object(out)
                        }
                        None => r,
                    }))
                },
            ),
    )
}

fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// GET /metrics — Prometheus text format.
pub fn metrics(st: AppState) -> BoxedFilter<(Response,)> {
    let public =
        st.config.settings.metrics.public || st.auth.mode == crate::config::AuthMode::Local;
    let gate = if public {
        warp::any().map(|| ()).boxed()
    } else {
        auth::require(st.clone(), Permission::Diagnostics)
            .map(|_c: Caller| ())
            .boxed()
    };
    boxed(
        warp::path!("metrics")
            .and(warp::get())
            .and(gate)
            .and(with_state(st))
            .and_then(|(), st: AppState| async move {
                let counts = st
                    .memories
                    .reads()
                    .read(|c| {
                        let live: i64 = c.query_row(
                            "SELECT COUNT(*) FROM memories WHERE is_deleted = 0",
                            [],
                            |r| r.get(0),
                        )?;
                        let deleted: i64 = c.query_row(
                            "SELECT COUNT(*) FROM memories WHERE is_deleted = 1",
                            [],
                            |r| r.get(0),
                        )?;
                        Ok((live, deleted, crate::store::jobs::counts(c)?))
                    })
                    .await;
                let text = match counts {
                    Ok((live, deleted, jobs)) => render_metrics(&st, live, deleted, &jobs),
                    Err(e) => return super::error::reply::<()>(Err(e.into())),
                };
                Ok(warp::reply::with_header(
                    text,
                    "content-type",
                    "text/plain; version=0.0.4; charset=utf-8",
                )
                .into_response())
            }),
    )
}

fn render_metrics(
    st: &AppState,
    live: i64,
    deleted: i64,
    jobs: &crate::store::jobs::QueueCounts,
) -> String {
    use std::fmt::Write;
    let t = &st.telemetry;
    let mut o = String::with_capacity(4096);
    let _ = writeln!(
        o,
        "# HELP signet_http_requests_total HTTP requests by route and status."
    );
    let _ = writeln!(o, "# TYPE signet_http_requests_total counter");
    let mut routes: Vec<_> = t.routes.iter().map(|r| r.key().clone()).collect();
    routes.sort();
    for route in &routes {
        if let Some(r) = t.routes.get(route) {
            let (method, path) = route.split_once(' ').unwrap_or(("", route.as_str()));
            let mut statuses: Vec<(u16, u64)> = r
                .by_status
                .iter()
                .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
                .collect();
            statuses.sort();
            for (status, n) in statuses {
                let _ = writeln!(
                    o,
                    "signet_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    prom_escape(method),
                    prom_escape(path)
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "# HELP signet_http_request_duration_seconds Request latency by route."
    );
    let _ = writeln!(o, "# TYPE signet_http_request_duration_seconds histogram");
    for route in &routes {
        if let Some(r) = t.routes.get(route) {
            let (method, path) = route.split_once(' ').unwrap_or(("", route.as_str()));
            let labels = format!(
                "method=\"{}\",route=\"{}\"",
                prom_escape(method),
                prom_escape(path)
            );
            let mut cumulative = 0;
            for (i, le) in crate::telemetry::BUCKETS.iter().enumerate() {
                cumulative += r.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(o, "signet_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let count = r.count.load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "signet_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                o,
                "signet_http_request_duration_seconds_sum{{{labels}}} {}",
                r.total_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "signet_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
    let gauge = |o: &mut String, name: &str, help: &str, kind: &str, v: String| {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        let _ = writeln!(o, "{name} {v}");
    };
    let _ = writeln!(o, "# HELP signet_memories Memories by state.");
    let _ = writeln!(o, "# TYPE signet_memories gauge");
    let _ = writeln!(o, "signet_memories{{state=\"live\"}} {live}");
    let _ = writeln!(o, "signet_memories{{state=\"deleted\"}} {deleted}");
    let _ = writeln!(o, "# HELP signet_queue_jobs Pipeline jobs by status.");
    let _ = writeln!(o, "# TYPE signet_queue_jobs gauge");
    for (s, n) in [
        ("pending", jobs.pending),
        ("leased", jobs.leased),
        ("completed", jobs.completed),
        ("failed", jobs.failed),
        ("dead", jobs.dead),
    ] {
        let _ = writeln!(o, "signet_queue_jobs{{status=\"{s}\"}} {n}");
    }
    gauge(
        &mut o,
        "signet_sse_clients",
        "Connected SSE clients.",
        "gauge",
        st.sse_clients.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut o,
        "signet_events_published_total",
        "Events published to SSE subscribers.",
        "counter",
        st.events_published.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut o,
        "signet_rate_limit_rejections_total",
        "Requests refused by the rate-limit ledger.",
        "counter",
        st.auth.rejections.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut o,
        "signet_actor_restarts_total",
        "Supervised actor restarts.",
        "counter",
        st.restarts.load(Ordering::Relaxed).to_string(),
    );
    let w = &st.writer_stats;
    gauge(
        &mut o,
        "signet_writer_batches_total",
        "Group commits.",
        "counter",
        w.batches.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut o,
        "signet_writer_ops_total",
        "Writes committed.",
        "counter",
        w.ops.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut o,
        "signet_writer_commit_failures_total",
        "Failed group commits.",
        "counter",
        w.commit_failures.load(Ordering::Relaxed).to_string(),
    );
    let wal = std::fs::metadata(crate::store::checkpoint::wal_path(&st.config.db_path()))
        .map(|m| m.len())
        .unwrap_or(0);
    gauge(
        &mut o,
        "signet_wal_bytes",
        "Size of the write-ahead log.",
        "gauge",
        wal.to_string(),
    );
    gauge(
        &mut o,
        "signet_wal_restarts_total",
        "Checkpoints that started over a WAL grown past its bound.",
        "counter",
        st.checkpoints.restarts.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut o,
        "signet_store_fault_episodes_total",
        "Times the store stopped taking writes (disk full, read-only).",
        "counter",
        w.fault_episodes.load(Ordering::Relaxed).to_string(),
    );
    o.push_str(
        "# HELP signet_store_fault 1 while writes meet this fault; reads go on.\n\
         # TYPE signet_store_fault gauge\n",
    );
    for f in [crate::store::Fault::DiskFull, crate::store::Fault::ReadOnly] {
        o.push_str(&format!(
            "signet_store_fault{{kind=\"{}\"}} {}\n",
            f.as_str(),
            u8::from(w.fault() == Some(f))
        ));
    }
    gauge(
        &mut o,
        "signet_uptime_seconds",
        "Seconds since start.",
        "gauge",
        format!("{:.3}", st.started.elapsed().as_secs_f64()),
    );
    o
}

/// GET /api/analytics/usage|errors|latency|logs
pub fn analytics(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "analytics" / String)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Analytics))
            .and(warp::query::<std::collections::HashMap<String, String>>())
            .and(with_state(st))
            .map(|which: String, caller: Caller, q: std::collections::HashMap<String, String>, st: AppState| {
                let t = &st.telemetry;
                match which.as_str() {
                    "usage" => {
                        let mut endpoints = serde_json::Map::new();
                        for r in t.routes.iter() {
                            endpoints.insert(
                                r.key().clone(),
                                json!({
                                    "count": r.count.load(Ordering::Relaxed),
                                    "errors": r.errors.load(Ordering::Relaxed),
                                    "totalLatencyMs": r.total_us.load(Ordering::Relaxed) as f64 / 1000.0,
                                }),
                            );
                        }
                        let actors: serde_json::Map<String, serde_json::Value> =
                            t.actors.iter().map(|a| (a.key().clone(), json!(a.value().load(Ordering::Relaxed)))).collect();
                        json(&json!({ "endpoints": endpoints, "actors": actors }))
                    }
                    "errors" => {
                        let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100usize).min(500);
                        let errors = t.errors(q.get("stage").map(String::as_str), q.get("since").map(String::as_str), limit);
                        let all = t.errors(None, None, crate::telemetry::ERRORS_KEPT);
                        let mut by_stage = serde_json::Map::new();
                        for e in &all {
                            let n = by_stage.get(e.stage).and_then(|v| v.as_u64()).unwrap_or(0);
                            by_stage.insert(e.stage.into(), json!(n + 1));
                        }
                        json(&json!({ "errors": errors, "summary": { "total": all.len(), "byStage": by_stage } }))
                    }
                    "latency" => json(&json!({
                        "remember": t.remember.percentiles(),
                        "recall": t.recall.percentiles(),
                        "mutate": t.mutate.percentiles(),
                    })),
                    "logs" => {
                        if let Err(e) = caller.require_unscoped("the daemon log") {
                            return super::error::ApiError::from(e).to_response();
                        }
                        let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100usize).min(crate::logbuf::KEPT);
                        let logs = crate::logbuf::global().recent(limit, q.get("level").map(String::as_str));
                        json(&json!({ "logs": logs, "count": logs.len() }))
                    }
                    other => super::error::ApiError::NotFound(format!("no analytics view '{other}'")).to_response(),
                }
            }),
    )
}
