//! Daemon operations, answered by the domain layer for every front:
//! health, status, diagnostics (cached), the figures behind `/metrics`,
//! analytics, the pipeline's summary and the embedding status. Each
//! admits its caller like the memory operations do; a front only renders.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Caller, MemoryError, MemoryService, Operation};
use crate::actors::store_writer::WriterStats;
use crate::actors::Registry;
use crate::config::{AuthMode, Config};
use crate::store::checkpoint::CheckpointStats;
use crate::store::jobs::QueueCounts;
use crate::telemetry::Telemetry;

/// Diagnostics are cached this long, so polling is cheap.
const DIAGNOSTICS_TTL: Duration = Duration::from_secs(5);
/// `integrity_check` reads the whole file; it is re-run at most this often.
const INTEGRITY_TTL: Duration = Duration::from_secs(60);

/// Counters for `/api/pipeline/status`.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub embedded: AtomicU64,
    pub embed_batches: AtomicU64,
    pub embed_failures: AtomicU64,
    /// Nanoseconds spent in backfill provider calls.
    pub embed_ns: AtomicU64,
    pub jobs_completed: AtomicU64,
    pub jobs_failed: AtomicU64,
    pub facts_added: AtomicU64,
    pub facts_updated: AtomicU64,
    pub facts_deleted: AtomicU64,
    pub proposals: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl PipelineStats {
    /// Remember the latest failure.
    pub fn error(&self, e: impl std::fmt::Display) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e.to_string());
        }
    }

    /// A JSON view.
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let secs = g(&self.embed_ns) as f64 / 1e9;
        let embedded = g(&self.embedded);
        serde_json::json!({
            "embedded": embedded,
            "embedBatches": g(&self.embed_batches),
            "embedFailures": g(&self.embed_failures),
            "embedPerSecond": if secs > 0.0 { (embedded as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
            "jobsCompleted": g(&self.jobs_completed),
            "jobsFailed": g(&self.jobs_failed),
            "factsAdded": g(&self.facts_added),
            "factsUpdated": g(&self.facts_updated),
            "factsDeleted": g(&self.facts_deleted),
            "proposals": g(&self.proposals),
            "lastError": self.last_error.lock().ok().and_then(|e| e.clone()),
        })
    }
}

/// The mode reported by `/api/pipeline/status`.
pub fn mode(config: &Config) -> &'static str {
    let p = &config.settings.memory.pipeline_v2;
    if !p.enabled || p.extraction.provider == "none" {
        "embeddings-only"
    } else if p.mutations_frozen {
        "frozen"
    } else if p.shadow_mode {
        "shadow"
    } else {
        "active"
    }
}

/// The last diagnostics report and integrity result.
#[derive(Default)]
struct DiagnosticsCache {
    report: Mutex<Option<(Instant, Value)>>,
    integrity: Mutex<Option<(Instant, String)>>,
}

/// The counters and handles the operations read.
pub struct OpsParts {
    pub memories: MemoryService,
    pub config: Arc<Config>,
    pub registry: Registry,
    pub writer_stats: Arc<WriterStats>,
    pub checkpoints: Arc<CheckpointStats>,
    /// Supervised actor restarts.
    pub restarts: Arc<AtomicU64>,
    pub pipeline: Arc<PipelineStats>,
    /// Per-route request figures, recorded by the HTTP front.
    pub telemetry: Arc<Telemetry>,
    /// Connected SSE clients.
    pub sse_clients: Arc<AtomicU64>,
    pub events_published: Arc<AtomicU64>,
    /// The port actually bound.
    pub port: u16,
}

/// The daemon operations.
pub struct Ops {
    p: OpsParts,
    diagnostics: DiagnosticsCache,
    started: Instant,
    started_at: String,
}

/// The figures behind `/metrics`; the front renders them.
pub struct Metrics {
    pub live: i64,
    pub deleted: i64,
    pub jobs: QueueCounts,
    pub sse_clients: u64,
    pub events_published: u64,
    pub rate_rejections: u64,
    pub restarts: u64,
    pub writer: Arc<WriterStats>,
    pub wal_bytes: u64,
    pub wal_restarts: u64,
    pub uptime_secs: f64,
    /// Per-route requests and latency histograms.
    pub telemetry: Arc<Telemetry>,
}

impl Ops {
    /// Operations over the daemon's parts, started now.
    pub fn new(parts: OpsParts) -> Self {
        Ops {
            p: parts,
            diagnostics: DiagnosticsCache::default(),
            started: Instant::now(),
            started_at: crate::store::now_iso(),
        }
    }

    /// `GET /health`: open in every mode (the CLI's liveness probe).
    pub fn health(&self) -> Value {
        json!({
            "status": "healthy",
            "uptime": self.started.elapsed().as_secs_f64(),
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "port": self.p.port,
            "agentsDir": self.p.config.workspace,
            "db": self.p.registry.writer().is_some(),
        })
    }

    /// The daemon's status: settings, health, provider and writer state.
    pub async fn status(&self, caller: &Caller) -> Result<Value, MemoryError> {
        self.p.memories.admit(caller, Operation::Recall).await?;
        let composite = self.report().await.ok().map(|r| r["composite"].clone());
        let c = &self.p.config;
        let p = &c.settings.memory.pipeline_v2;
        let e = &c.settings.embedding;
        let w = &self.p.writer_stats;
        let writer_up = self.p.registry.writer().is_some();
        let health = match (writer_up, composite) {
            (false, _) => json!({ "score": 0.0, "status": "unhealthy" }),
            (true, Some(c)) => c,
            (true, None) => json!({ "score": null, "status": "unknown" }),
        };
        let provider = self.p.memories.embed.status();
        Ok(json!({
            "status": "running",
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "startedAt": self.started_at,
            "port": self.p.port,
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
                "available": provider.available,
                "state": provider.state,
                "error": provider.error,
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
                "syncs": w.syncs.load(Ordering::Relaxed),
                "syncMs": w.sync_ns.load(Ordering::Relaxed) / 1_000_000,
                "restarts": self.p.restarts.load(Ordering::Relaxed),
            },
        }))
    }

    /// The diagnostics report, or one domain of it (Signet's shape: the
    /// domain object unwrapped, `score` and `status` top-level; ours adds
    /// `timestamp`, `domain` and the object under its name).
    pub async fn diagnostics(
        &self,
        caller: &Caller,
        domain: Option<&str>,
    ) -> Result<Value, MemoryError> {
        self.p.memories.admit(caller, Operation::Diagnose).await?;
        if let Some(d) = domain {
            if !crate::diagnostics::DOMAINS.contains(&d) {
                return Err(MemoryError::BadRequest(format!(
                    "unknown diagnostics domain '{d}'; one of {}",
                    crate::diagnostics::DOMAINS.join(", ")
                )));
            }
        }
        let r = self.report().await?;
        Ok(match domain {
            Some(d) => {
                let mut out = match &r[d] {
                    Value::Object(m) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                out.insert("timestamp".into(), r["timestamp"].clone());
                out.insert("domain".into(), json!(d));
                out.insert(d.to_string(), r[d].clone());
                Value::Object(out)
            }
            None => r,
        })
    }

    /// Build (or reuse) the full diagnostics report.
    async fn report(&self) -> Result<Value, MemoryError> {
        if let Ok(g) = self.diagnostics.report.lock() {
            if let Some((at, v)) = g.as_ref() {
                if at.elapsed() < DIAGNOSTICS_TTL {
                    return Ok(v.clone());
                }
            }
        }
        let cached_integrity = self.diagnostics.integrity.lock().ok().and_then(|g| {
            g.as_ref()
                .filter(|(at, _)| at.elapsed() < INTEGRITY_TTL)
                .map(|(_, s)| s.clone())
        });
        let e = &self.p.config.settings.embedding;
        let p = self.p.memories.embed.status();
        let provider = crate::diagnostics::ProviderHealth {
            provider: e.provider.clone(),
            available: p.available,
            calls: p.calls.min(100) as usize,
            success_rate: p.success_rate,
            error: p.error,
        };
        let embeddings_expected = e.provider != "none";
        let fault = self.p.writer_stats.fault();
        let (report, integrity) = self
            .p
            .memories
            .reads
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
                Ok((Value::Object(m), integrity))
            })
            .await?;
        if let Ok(mut g) = self.diagnostics.integrity.lock() {
            if g.as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= INTEGRITY_TTL)
            {
                *g = Some((Instant::now(), integrity));
            }
        }
        if let Ok(mut g) = self.diagnostics.report.lock() {
            *g = Some((Instant::now(), report.clone()));
        }
        Ok(report)
    }

    /// Whether `/metrics` is open without a token (`metrics.public`, or
    /// local mode where nothing needs one).
    pub fn metrics_public(&self) -> bool {
        self.p.config.settings.metrics.public || self.p.config.settings.auth.mode == AuthMode::Local
    }

    /// The figures behind `/metrics`; `caller` is `None` for an
    /// unauthenticated scrape, which only a public endpoint admits.
    pub async fn metrics(&self, caller: Option<&Caller>) -> Result<Metrics, MemoryError> {
        match caller {
            Some(c) => self.p.memories.admit(c, Operation::Diagnose).await?,
            None if self.metrics_public() => {}
            None => {
                return Err(MemoryError::Forbidden(
                    "metrics need the 'diagnostics' permission".into(),
                ))
            }
        }
        let (live, deleted, jobs) = self
            .p
            .memories
            .reads
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
            .await?;
        let wal_bytes =
            std::fs::metadata(crate::store::checkpoint::wal_path(&self.p.config.db_path()))
                .map(|m| m.len())
                .unwrap_or(0);
        Ok(Metrics {
            live,
            deleted,
            jobs,
            sse_clients: self.p.sse_clients.load(Ordering::Relaxed),
            events_published: self.p.events_published.load(Ordering::Relaxed),
            rate_rejections: self.p.memories.rate_rejections(),
            restarts: self.p.restarts.load(Ordering::Relaxed),
            writer: self.p.writer_stats.clone(),
            wal_bytes,
            wal_restarts: self.p.checkpoints.restarts.load(Ordering::Relaxed),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            telemetry: self.p.telemetry.clone(),
        })
    }

    /// An analytics view: `usage`, `errors`, `latency` or `logs`.
    pub async fn analytics(
        &self,
        caller: &Caller,
        which: &str,
        q: &HashMap<String, String>,
    ) -> Result<Value, MemoryError> {
        self.p.memories.admit(caller, Operation::Analyse).await?;
        let t = &self.p.telemetry;
        Ok(match which {
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
                let actors: serde_json::Map<String, Value> = t
                    .actors
                    .iter()
                    .map(|a| (a.key().clone(), json!(a.value().load(Ordering::Relaxed))))
                    .collect();
                json!({ "endpoints": endpoints, "actors": actors })
            }
            "errors" => {
                let limit = q
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(100usize)
                    .min(500);
                let errors = t.errors(
                    q.get("stage").map(String::as_str),
                    q.get("since").map(String::as_str),
                    limit,
                );
                let all = t.errors(None, None, crate::telemetry::ERRORS_KEPT);
                let mut by_stage = serde_json::Map::new();
                for e in &all {
                    let n = by_stage.get(e.stage).and_then(|v| v.as_u64()).unwrap_or(0);
                    by_stage.insert(e.stage.into(), json!(n + 1));
                }
                json!({ "errors": errors, "summary": { "total": all.len(), "byStage": by_stage } })
            }
            "latency" => json!({
                "remember": t.remember.percentiles(),
                "recall": t.recall.percentiles(),
                "mutate": t.mutate.percentiles(),
            }),
            "logs" => self.log_lines(caller, q)?,
            other => return Err(MemoryError::NoSuch(format!("no analytics view '{other}'"))),
        })
    }

    /// `GET /api/logs`: the daemon log's recent lines (`limit`, `level`).
    pub async fn logs(
        &self,
        caller: &Caller,
        q: &HashMap<String, String>,
    ) -> Result<Value, MemoryError> {
        self.p.memories.admit(caller, Operation::Diagnose).await?;
        self.log_lines(caller, q)
    }

    /// The live daemon log, for a stream; daemon-wide like the lines.
    pub async fn log_feed(
        &self,
        caller: &Caller,
    ) -> Result<tokio::sync::broadcast::Receiver<Arc<crate::logbuf::LogEntry>>, MemoryError> {
        self.p.memories.admit(caller, Operation::Diagnose).await?;
        caller.require_unscoped("the daemon log")?;
        Ok(crate::logbuf::global().subscribe())
    }

    /// The daemon log's recent lines; daemon-wide, so only an unscoped
    /// caller may read it.
    fn log_lines(
        &self,
        caller: &Caller,
        q: &HashMap<String, String>,
    ) -> Result<Value, MemoryError> {
        caller.require_unscoped("the daemon log")?;
        let limit = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(100usize)
            .min(crate::logbuf::KEPT);
        let logs = crate::logbuf::global().recent(limit, q.get("level").map(String::as_str));
        Ok(json!({ "logs": logs, "count": logs.len() }))
    }

    /// The pipeline's state without its running counters: mode, job queue,
    /// provider and extraction switches. `pipeline.status` events carry
    /// exactly this, so that one goes out only when something in it changed.
    pub async fn pipeline_summary(&self) -> Result<Value, MemoryError> {
        let counts = self
            .p
            .memories
            .reads
            .read(crate::store::jobs::counts)
            .await?;
        let c = &self.p.config.settings.memory.pipeline_v2;
        let embed = self.p.memories.embed.status();
        Ok(json!({
            "mode": mode(&self.p.config),
            "queues": { "memory": counts },
            "workers": {
                "embedding": { "provider": embed.provider, "state": embed.state },
                "extraction": {
                    "provider": c.extraction.provider,
                    "enabled": c.enabled && c.extraction.provider != "none",
                    "shadowMode": c.shadow_mode,
                    "mutationsFrozen": c.mutations_frozen,
                },
            },
        }))
    }

    /// Whether `caller` may take `pipeline.status` events (daemon-wide
    /// queue depths are diagnostics).
    pub fn permit_pipeline_events(&self, caller: &Caller) -> Result<(), MemoryError> {
        caller
            .permit(Operation::Diagnose.permission())
            .map_err(|_| {
                MemoryError::Forbidden(
                    "pipeline.status events need the 'diagnostics' permission".into(),
                )
            })
    }

    /// `GET /api/pipeline/status`: the summary plus the running counters.
    pub async fn pipeline_status(&self, caller: &Caller) -> Result<Value, MemoryError> {
        self.p.memories.admit(caller, Operation::Diagnose).await?;
        let mut body = self.pipeline_summary().await?;
        let c = &self.p.config.settings.memory.pipeline_v2;
        body["workers"]["pipeline"] = json!({ "running": true, "pollMs": c.poll_ms });
        body["stats"] = self.p.pipeline.snapshot();
        Ok(body)
    }

    /// `GET /api/embeddings/status`: coverage, provider and index.
    pub async fn embeddings_status(&self, caller: &Caller) -> Result<Value, MemoryError> {
        self.p.memories.admit(caller, Operation::Diagnose).await?;
        let (live, embedded, vec_rows) = self
            .p
            .memories
            .reads
            .read(|c| {
                let s = crate::store::memories::stats(c, &Default::default())?;
                Ok((s.total, s.with_embeddings, crate::store::vec::count(c)?))
            })
            .await?;
        let p = self.p.memories.embed.status();
        let stats = &self.p.pipeline;
        let index = &self.p.memories.index;
        Ok(json!({
            "provider": p,
            "memories": live,
            "embedded": embedded,
            "pending": live - embedded,
            "coverage": if live > 0 { embedded as f64 / live as f64 } else { 1.0 },
            "vectorTableRows": vec_rows,
            "index": {
                "vectors": index.len(),
                "loading": p.provider != "none" && !index.is_complete(),
                "dimensions": index.dims(),
                "bytes": index.bytes(),
                "encoding": "int8",
            },
            "backfill": {
                "embedded": stats.embedded.load(Ordering::Relaxed),
                "batches": stats.embed_batches.load(Ordering::Relaxed),
                "failures": stats.embed_failures.load(Ordering::Relaxed),
            },
        }))
    }
}
