//! Pipeline and embedding routes: `GET /api/pipeline/status`,
//! `GET /api/memory/jobs/:id`, `GET /api/embeddings/status` and
//! `GET /memory/similar?id=&k=`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{boxed, json, with_state, AppContext, AppState};
use crate::memory::{Caller, MemoryError};

/// GET /api/pipeline/status (diagnostics)
pub fn status(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "pipeline" / "status")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(with_state(st))
            .and_then(|_caller: Caller, st: AppState| async move {
                let mut body = match summary(&st).await {
                    Ok(b) => b,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let c = &st.config.settings.memory.pipeline_v2;
                body["workers"]["pipeline"] = json!({ "running": true, "pollMs": c.poll_ms });
                body["stats"] = serde_json::to_value(st.pipeline.snapshot()).unwrap_or_default();
                Ok(json(&body))
            }),
    )
}

/// The pipeline's state without its running counters: mode, job queue,
/// provider and extraction switches. `/api/pipeline/status` adds the
/// counters; `pipeline.status` events carry exactly this, so that one goes
/// out only when something in it changed.
pub async fn summary(st: &AppContext) -> Result<Value, MemoryError> {
    let counts = st
        .memories
        .reads()
        .read(crate::store::jobs::counts)
        .await
        .map_err(MemoryError::from)?;
    let c = &st.config.settings.memory.pipeline_v2;
    let embed = st.memories.embedder().status();
    Ok(json!({
        "mode": crate::pipeline::mode(&st.config),
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

/// How often the pipeline's state is compared for `pipeline.status`.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// `summary` as one SSE `pipeline.status` frame. It has no `id:`: a status
/// is a snapshot, not part of the resumable log, so it never moves a
/// client's `Last-Event-ID` and is never replayed (a reconnecting client
/// gets a fresh one instead).
pub fn status_frame(summary: &Value) -> Bytes {
    Bytes::from(format!("event:pipeline.status\ndata:{summary}\n\n"))
}

/// While any client takes `pipeline.status`, compares the pipeline's state
/// every [`STATUS_EVERY`] and hands a changed one to those clients. Ends
/// when the daemon stops.
pub async fn publish_status(st: AppState) {
    let mut stop = st.shutdown.clone();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<Value> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if st.pipeline_status.receiver_count() == 0 {
            continue;
        }
        match summary(&st).await {
            Ok(now) if last.as_ref() != Some(&now) => {
                st.pipeline_status.send_replace(Some(status_frame(&now)));
                last = Some(now);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "pipeline status not read"),
        }
    }
}

/// GET /api/memory/jobs/:id (recall; the job's memory must be in scope)
pub fn job(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "memory" / "jobs" / String)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(with_state(st))
            .and_then(|id: String, caller: Caller, st: AppState| async move {
                reply(st.memories.job_status(&caller, id).await)
            }),
    )
}

/// GET /api/embeddings/status (diagnostics)
pub fn embeddings(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "embeddings" / "status")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(with_state(st))
            .and_then(|_caller: Caller, st: AppState| async move {
                let counts = st
                    .memories
                    .reads()
                    .read(|c| {
                        let s = crate::store::memories::stats(c, &Default::default())?;
                        Ok((s.total, s.with_embeddings, crate::store::vec::count(c)?))
                    })
                    .await
                    .map_err(MemoryError::from);
                let (live, embedded, vec_rows) = match counts {
                    Ok(c) => c,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let p = st.memories.embedder().status();
                let stats = &st.pipeline;
                Ok(json(&json!({
                    "provider": p,
                    "memories": live,
                    "embedded": embedded,
                    "pending": live - embedded,
                    "coverage": if live > 0 { embedded as f64 / live as f64 } else { 1.0 },
                    "vectorTableRows": vec_rows,
                    "index": {
                        "vectors": st.memories.index().len(),
                        "dimensions": st.memories.index().dims(),
                        "bytes": st.memories.index().bytes(),
                        "encoding": "int8",
                    },
                    "backfill": {
                        "embedded": stats.embedded.load(Ordering::Relaxed),
                        "batches": stats.embed_batches.load(Ordering::Relaxed),
                        "failures": stats.embed_failures.load(Ordering::Relaxed),
                    },
                })))
            }),
    )
}

/// GET /memory/similar?id=&k=10 (recall): vector neighbours of a memory.
pub fn similar(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("memory" / "similar")
            .or(warp::path!("api" / "memory" / "similar"))
            .unify()
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    let Some(id) = q.get("id").filter(|i| !i.is_empty()).cloned() else {
                        return reply::<()>(Err(MemoryError::BadRequest("id is required".into())));
                    };
                    let k = match q.get("k").map(|k| k.parse::<usize>()) {
                        None => 10,
                        Some(Ok(k)) if (1..=100).contains(&k) => k,
                        Some(_) => {
                            return reply::<()>(Err(MemoryError::BadRequest(
                                "k must be an integer within 1..100".into(),
                            )))
                        }
                    };
                    match st.memories.similar(&caller, id.clone(), k).await {
                        Ok(Some(results)) => Ok(json(&json!({
                            "id": id, "results": results, "embedded": true, "method": "vector",
                        }))),
                        Ok(None) => Ok(json(&json!({
                            "id": id, "results": [], "embedded": false, "method": "vector",
                        }))),
                        Err(e) => reply::<()>(Err(e)),
                    }
                },
            ),
    )
}
