//! Pipeline and embedding routes: `GET /api/pipeline/status`,
//! `GET /api/memory/jobs/:id`, `GET /api/embeddings/status` and
//! `GET /memory/similar?id=&k=`.

use std::collections::HashMap;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
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
            .and_then(|caller: Caller, st: AppState| async move {
                reply(st.ops.pipeline_status(&caller).await)
            }),
    )
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
        match st.ops.pipeline_summary().await {
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
            .and_then(|caller: Caller, st: AppState| async move {
                reply(st.ops.embeddings_status(&caller).await)
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
