//! Operational routes: health, status, diagnostics, metrics (rendered
//! here in Prometheus text from the domain's figures) and analytics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{self, Permission};
use super::error::reply;
use super::{boxed, json, with_state, AppState};
use crate::memory::ops::Metrics;
use crate::memory::Caller;

/// GET /health — open in every mode; the CLI's liveness probe.
pub fn health(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("health")
            .and(warp::get())
            .and(with_state(st))
            .map(|st: AppState| json(&st.ops.health())),
    )
}

/// GET /api/status
pub fn status(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "status")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(with_state(st))
            .and_then(
                |caller: Caller, st: AppState| async move { reply(st.ops.status(&caller).await) },
            ),
    )
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
                |domain: Option<String>, caller: Caller, st: AppState| async move {
                    reply(st.ops.diagnostics(&caller, domain.as_deref()).await)
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
    let gate = if st.ops.metrics_public() {
        warp::any().map(|| None).boxed()
    } else {
        auth::require(st.clone(), Permission::Diagnostics)
            .map(Some)
            .boxed()
    };
    boxed(
        warp::path!("metrics")
            .and(warp::get())
            .and(gate)
            .and(with_state(st))
            .and_then(|caller: Option<Caller>, st: AppState| async move {
                let m = match st.ops.metrics(caller.as_ref()).await {
                    Ok(m) => m,
                    Err(e) => return reply::<()>(Err(e)),
                };
                Ok(warp::reply::with_header(
                    render_metrics(&m),
                    "content-type",
                    "text/plain; version=0.0.4; charset=utf-8",
                )
                .into_response())
            }),
    )
}

fn render_metrics(m: &Metrics) -> String {
    use std::fmt::Write;
    let (live, deleted, jobs) = (m.live, m.deleted, &m.jobs);
    let t = &m.telemetry;
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
        m.sse_clients.to_string(),
    );
    gauge(
        &mut o,
        "signet_events_published_total",
        "Events published to SSE subscribers.",
        "counter",
        m.events_published.to_string(),
    );
    gauge(
        &mut o,
        "signet_rate_limit_rejections_total",
        "Requests refused by the rate-limit ledger.",
        "counter",
        m.rate_rejections.to_string(),
    );
    gauge(
        &mut o,
        "signet_actor_restarts_total",
        "Supervised actor restarts.",
        "counter",
        m.restarts.to_string(),
    );
    let w = &m.writer;
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
    let wal = m.wal_bytes;
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
        m.wal_restarts.to_string(),
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
        format!("{:.3}", m.uptime_secs),
    );
    o
}

/// GET /api/analytics/usage|errors|latency|logs
pub fn analytics(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "analytics" / String)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Analytics))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |which: String, caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    reply(st.ops.analytics(&caller, &which, &q).await)
                },
            ),
    )
}
