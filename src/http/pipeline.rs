//! Pipeline and embedding routes: `GET /api/pipeline/status`,
//! `GET /api/memory/jobs/:id`, `GET /api/embeddings/status` and
//! `GET /memory/similar?id=&k=`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{boxed, json, with_state, AppState};
use crate::memory::{Caller, MemoryError};

/// GET /api/pipeline/status (diagnostics)
pub fn status(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "pipeline" / "status")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(with_state(st))
            .and_then(|_caller: Caller, st: AppState| async move {
                let counts = st
                    .memories
                    .reads()
                    .read(crate::store::jobs::counts)
                    .await
                    .map_err(MemoryError::from);
                let counts = match counts {
                    Ok(c) => c,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let c = &st.config.settings.memory.pipeline_v2;
                let embed = st.memories.embedder().status();
                Ok(json(&json!({
                    "mode": crate::actors::pipeline::mode(&st.config),
                    "queues": { "memory": counts },
                    "workers": {
                        "pipeline": { "running": true, "pollMs": c.poll_ms },
                        "embedding": { "provider": embed.provider, "state": embed.state },
                        "extraction": {
                            "provider": c.extraction.provider,
                            "enabled": c.enabled && c.extraction.provider != "none",
                            "shadowMode": c.shadow_mode,
                            "mutationsFrozen": c.mutations_frozen,
                        },
                    },
                    "stats": st.pipeline.snapshot(),
                })))
            }),
    )
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
