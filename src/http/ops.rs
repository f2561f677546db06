//! Operational routes: health and status.

use std::sync::atomic::Ordering;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

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
            .map(|_caller: Caller, st: AppState| {
                let c = &st.config;
                let p = &c.settings.memory.pipeline_v2;
                let e = &c.settings.embedding;
                let w = &st.writer_stats;
                let writer_up = st.registry.writer().is_some();
                let score = if writer_up { 1.0 } else { 0.0 };
                json(&json!({
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
                    "health": {
                        "score": score,
                        "status": if writer_up { "healthy" } else { "unhealthy" },
                    },
                    "embedding": {
                        "provider": e.provider,
                        "model": e.model,
                        "available": false,
                    },
                    "writer": {
                        "running": writer_up,
                        "batches": w.batches.load(Ordering::Relaxed),
                        "ops": w.ops.load(Ordering::Relaxed),
                        "meanBatch": w.mean_batch(),
                        "maxBatch": w.max_batch.load(Ordering::Relaxed),
                        "commitFailures": w.commit_failures.load(Ordering::Relaxed),
                        "busyMs": w.busy_ns.load(Ordering::Relaxed) / 1_000_000,
                        "commitMs": w.commit_ns.load(Ordering::Relaxed) / 1_000_000,
                        "restarts": st.restarts.load(Ordering::Relaxed),
                    },
                }))
            }),
    )
}
