//! In-memory request telemetry: per-route counts, latency histograms and
//! errors for `/metrics` and `/api/analytics/*`, and per-operation latency
//! samples (the last 1000) for percentiles.
//!
//! Recording runs on every request, so it takes no global lock: routes and
//! actors live in `DashMap`s of atomics, latency samples in lock-free rings.
//! Only error entries (the rare path) go through a mutex.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
use serde::Serialize;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Samples kept per operation for percentiles.
pub const SAMPLES: usize = 1000;

/// Counters of one route.
#[derive(Debug, Default)]
pub struct RouteStats {
    pub count: AtomicU64,
    pub errors: AtomicU64,
    pub total_us: AtomicU64,
    pub buckets: [AtomicU64; BUCKETS.len()],
    pub by_status: DashMap<u16, AtomicU64>,
}

/// A ring of the last [`SAMPLES`] latencies (microseconds).
#[derive(Debug)]
pub struct LatencyRing {
    slots: Box<[AtomicU32]>,
    next: AtomicUsize,
}

impl Default for LatencyRing {
    fn default() -> Self {
        LatencyRing {
            slots: (0..SAMPLES).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

/// Percentiles of one operation, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub count: u64,
}

impl LatencyRing {
    /// Record one sample.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u32::MAX as u128 - 1) as u32 + 1;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % SAMPLES;
        self.slots[i].store(us, Ordering::Relaxed);
    }

    /// Percentiles over the samples held.
    pub fn percentiles(&self) -> Percentiles {
        let total = self.next.load(Ordering::Relaxed) as u64;
        let mut v: Vec<u32> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|x| *x > 0)
            .map(|x| x - 1)
            .collect();
        if v.is_empty() {
            return Percentiles {
                p50: 0.0,
                p95: 0.0,
                p99: 0.0,
                mean: 0.0,
                count: total,
            };
        }
        v.sort_unstable();
        let at = |q: f64| {
            let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            round3(v[idx] as f64 / 1000.0)
        };
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64 / 1000.0;
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            mean: round3(mean),
            count: total,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One recorded error.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEntry {
    pub stage: &'static str,
    pub route: String,
    pub status: u16,
    pub message: String,
    pub at: String,
}

/// The operations whose latency is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Remember,
    Recall,
    Mutate,
}

/// All telemetry of the process.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub routes: DashMap<String, RouteStats>,
    pub actors: DashMap<String, AtomicU64>,
    pub remember: LatencyRing,
    pub recall: LatencyRing,
    pub mutate: LatencyRing,
    pub rate_limited: AtomicU64,
    errors: Mutex<VecDeque<ErrorEntry>>,
}

/// Distinct routes tracked; requests to further paths (probes, typos)
/// count under [`OTHER_ROUTE`] so memory stays bounded.
pub const MAX_ROUTES: usize = 256;
/// The route name past [`MAX_ROUTES`].
pub const OTHER_ROUTE: &str = "OTHER";

/// Errors kept for `/api/analytics/errors`.
pub const ERRORS_KEPT: usize = 500;

/// Replace id-like path segments with `:id` so routes aggregate.
pub fn route_of(method: &str, path: &str) -> String {
    let mut out = String::with_capacity(method.len() + path.len() + 1);
    out.push_str(method);
    out.push(' ');
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        // Ids, keys and anything else a caller named: never a route word
        // (those are short, lowercase words), and never shown to other
        // scopes in error entries or metric labels.
        let id_like = seg.len() > 24
            || seg.chars().any(|c| c.is_ascii_digit())
            || !seg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_' || c == '.');
        out.push_str(if id_like { ":id" } else { seg });
    }
    if path == "/" || path.is_empty() {
        out.push('/');
    }
    out
}

/// Which tracked operation a request is, if any.
pub fn operation_of(method: &str, path: &str) -> Option<Operation> {
    match (method, path) {
        ("POST", "/api/memory/remember" | "/api/memory/save" | "/api/hook/remember") => {
            Some(Operation::Remember)
        }
        ("POST", "/api/memory/recall") | ("GET", "/api/memory/search" | "/memory/search") => {
            Some(Operation::Recall)
        }
        ("PATCH" | "DELETE", p) if p.starts_with("/api/memory/") => Some(Operation::Mutate),
        ("POST", "/api/memory/forget" | "/api/memory/modify") => Some(Operation::Mutate),
        ("POST", p) if p.starts_with("/api/memory/") && p.ends_with("/recover") => {
            Some(Operation::Mutate)
        }
        _ => None,
    }
}

fn stage_of(status: u16) -> &'static str {
    match status {
        401 | 403 => "auth",
        429 => "rate_limit",
        500..=599 => "server",
        _ => "request",
    }
}

impl Telemetry {
    /// Record one finished request.
    pub fn record(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        let mut route = route_of(method, path);
        if self.routes.len() >= MAX_ROUTES && !self.routes.contains_key(&route) {
            route = OTHER_ROUTE.to_string();
        }
        let us = elapsed.as_micros() as u64;
        {
            let stats = match self.routes.get(&route) {
                Some(s) => s,
                None => {
                    self.routes.entry(route.clone()).or_default();
                    match self.routes.get(&route) {
                        Some(s) => s,
                        None => return,
                    }
                }
            };
            stats.count.fetch_add(1, Ordering::Relaxed);
            stats.total_us.fetch_add(us, Ordering::Relaxed);
            let secs = elapsed.as_secs_f64();
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                stats.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
            match stats.by_status.get(&status) {
                Some(c) => {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    stats
                        .by_status
                        .entry(status)
                        .or_default()
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            if status >= 400 {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if status >= 400 {
            self.record_error(
                stage_of(status),
                &route,
                status,
                // The route, not the path: a path names ids a scoped
                // reader of the error list may not see.
                format!("{route} answered {status}"),
            );
        }
        if (200..300).contains(&status) {
            match operation_of(method, path) {
                Some(Operation::Remember) => self.remember.record(elapsed),
                Some(Operation::Recall) => self.recall.record(elapsed),
                Some(Operation::Mutate) => self.mutate.record(elapsed),
                None => {}
            }
        }
    }

    /// Count a request by the acting identity.
    pub fn record_actor(&self, actor: &str) {
        match self.actors.get(actor) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.actors
                    .entry(actor.to_string())
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Keep an error entry (bounded).
    pub fn record_error(&self, stage: &'static str, route: &str, status: u16, message: String) {
        if let Ok(mut e) = self.errors.lock() {
            if e.len() == ERRORS_KEPT {
                e.pop_front();
            }
            e.push_back(ErrorEntry {
                stage,
                route: route.to_string(),
                status,
                message,
                at: crate::store::now_iso(),
            });
        }
    }

    /// Recent errors, newest first, filtered.
    pub fn errors(
        &self,
        stage: Option<&str>,
        since: Option<&str>,
        limit: usize,
    ) -> Vec<ErrorEntry> {
        let Ok(e) = self.errors.lock() else {
            return Vec::new();
        };
        e.iter()
            .rev()
            .filter(|x| stage.is_none_or(|s| x.stage == s))
            .filter(|x| since.is_none_or(|s| x.at.as_str() >= s))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_aggregate_over_ids() {
        assert_eq!(
            route_of("GET", "/api/memory/01a202d9-a903-760d-8dc9-dd46f1a042cd"),
            "GET /api/memory/:id"
        );
        assert_eq!(
            route_of(
                "POST",
                "/api/memory/01a202d9-a903-760d-8dc9-dd46f1a042cd/recover"
            ),
            "POST /api/memory/:id/recover"
        );
        assert_eq!(route_of("GET", "/health"), "GET /health");
        assert_eq!(
            route_of("GET", "/api/memory/Secret-Plan/history"),
            "GET /api/memory/:id/history"
        );
        assert_eq!(route_of("GET", "/api/memory/abc123"), "GET /api/memory/:id");
        assert_eq!(
            route_of("GET", "/api/diagnostics/queue"),
            "GET /api/diagnostics/queue"
        );
        assert_eq!(route_of("GET", "/"), "GET /");
    }

    #[test]
    fn percentiles_over_the_last_samples() {
        let r = LatencyRing::default();
        for ms in 1..=100u64 {
            r.record(Duration::from_millis(ms));
        }
        let p = r.percentiles();
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p95, 95.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.mean, 50.5);
        // Only the last 1000 samples count.
        for _ in 0..SAMPLES {
            r.record(Duration::from_millis(7));
        }
        assert_eq!(r.percentiles().p99, 7.0);
    }

    #[test]
    fn requests_errors_and_operations_are_recorded() {
        let t = Telemetry::default();
        t.record(
            "POST",
            "/api/memory/remember",
            200,
            Duration::from_millis(2),
        );
        t.record(
            "POST",
            "/api/memory/remember",
            413,
            Duration::from_millis(1),
        );
        t.record(
            "GET",
            "/api/memory/abcdef0123456789abcd",
            404,
            Duration::from_micros(300),
        );
        let r = t.routes.get("POST /api/memory/remember").expect("route");
        assert_eq!(r.count.load(Ordering::Relaxed), 2);
        assert_eq!(r.errors.load(Ordering::Relaxed), 1);
        assert_eq!(t.remember.percentiles().count, 1);
        let e = t.errors(None, None, 10);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].route, "GET /api/memory/:id");
        assert_eq!(t.errors(Some("request"), None, 1).len(), 1);
    }

    #[test]
    fn route_cardinality_is_bounded() {
        let t = Telemetry::default();
        // Distinct word paths (digits would make them ids).
        let word = |mut i: usize| {
            let mut w = String::from("probe-");
            loop {
                w.push(char::from(b'a' + (i % 26) as u8));
                i /= 26;
                if i == 0 {
                    return w;
                }
            }
        };
        for i in 0..(MAX_ROUTES + 50) {
            t.record(
                "GET",
                &format!("/{}", word(i)),
                404,
                Duration::from_micros(5),
            );
        }
        assert_eq!(t.routes.len(), MAX_ROUTES + 1);
        assert_eq!(
            t.routes
                .get(OTHER_ROUTE)
                .expect("other")
                .count
                .load(Ordering::Relaxed),
            50
        );
    }
}
