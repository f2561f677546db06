//! `GET /sse` (alias `/api/events`): committed events as server-sent
//! events, filtered by `?types=`, `?project=` and the caller's scope,
//! resumable with `Last-Event-ID`, with a `: keepalive` comment every 15 s.
//! A client that falls further behind than its buffer is disconnected (it
//! resumes with `Last-Event-ID`); it never slows the writer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{self, Permission};
use super::error::ApiError;
use super::{boxed, with_state, AppState};
use crate::actors::sse::Event;
use crate::memory::Caller;
use crate::store::Scope;

/// Which events a client wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub types: Option<Vec<String>>,
    pub project: Option<String>,
    pub scope: Scope,
}

impl EventFilter {
    /// Whether `e` passes.
    pub fn admits(&self, e: &Event) -> bool {
        self.types
            .as_ref()
            .is_none_or(|t| t.iter().any(|k| k == e.kind))
            && self
                .project
                .as_ref()
                .is_none_or(|p| e.project.as_deref() == Some(p.as_str()))
            && self
                .scope
                .admits(e.project.as_deref(), e.agent.as_deref(), e.user.as_deref())
    }
}

/// How long a client's stream gathers commits into one write (measured:
/// 5 ms → 66–70% of the no-subscriber remember rate with 200 subscribers,
/// 15 ms → 78% with delivery p99 25 ms, 30 ms → 77% with p99 40 ms).
const COALESCE: Duration = Duration::from_millis(15);
/// Most commits gathered into one write.
const COALESCE_MAX: usize = 64;

/// Counts connected clients while alive.
struct ClientGuard(Arc<AtomicU64>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn to_sse(e: &Event) -> warp::sse::Event {
    warp::sse::Event::default()
        .id(e.id.to_string())
        .event(e.kind)
        .data(e.wire.clone())
}

/// A whole commit's events as one stream item. warp's `Event` holds a
/// single event; its comment field is written verbatim, so the batch's
/// pre-rendered frames ride behind an empty comment line (`:`), which SSE
/// clients ignore. The last frame's closing blank line comes from warp's
/// own terminator. One item (one write) per commit per client instead of
/// one per event is what keeps hundreds of subscribers cheap.
fn batch_item(wire: &str) -> warp::sse::Event {
    let body = wire.strip_suffix("\n\n").unwrap_or(wire);
    warp::sse::Event::default().comment(format!("\n{body}"))
}

impl EventFilter {
    /// True when the filter passes every event (no types, project or scope).
    fn passes_all(&self) -> bool {
        self.types.is_none() && self.project.is_none() && self.scope.is_unscoped()
    }
}

/// GET /sse and GET /api/events
pub fn stream(st: AppState) -> BoxedFilter<(Response,)> {
    let paths = warp::path!("sse").or(warp::path!("api" / "events")).unify();
    boxed(
        paths
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::header::optional::<String>("last-event-id"))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |caller: Caller, last: Option<String>, q: HashMap<String, String>, st: AppState| async move {
                    Ok::<_, Infallible>(match open(caller, last, q, st).await {
                        Ok(r) => r,
                        Err(e) => e.to_response(),
                    })
                },
            ),
    )
}

async fn open(
    caller: Caller,
    last: Option<String>,
    q: HashMap<String, String>,
    st: AppState,
) -> Result<Response, ApiError> {
    let after = match last.or_else(|| q.get("lastEventId").cloned()) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID must be an event id".into()))?,
        ),
    };
    let filter = EventFilter {
        types: q.get("types").map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        project: q.get("project").cloned().filter(|p| !p.is_empty()),
        scope: caller.scope.clone(),
    };
    let sub = st
        .registry
        .subscribe(after, Duration::from_secs(2))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    st.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = Arc::new(ClientGuard(st.sse_clients.clone()));
    let f1 = filter.clone();
    let replay = tokio_stream::iter(sub.replay).filter(move |e| f1.admits(e));
    // A client more than its buffer of commits behind ends its stream
    // here; it resumes with Last-Event-ID. The stream also ends when the
    // daemon shuts down, so graceful shutdown never waits on it.
    let all = filter.passes_all();
    let batches = BroadcastStream::new(sub.live)
        .take_while(|r| r.is_ok())
        .filter_map(|r| r.ok());
    // Commits that arrive within COALESCE of each other go out in one
    // write: with hundreds of subscribers, a write per commit per client
    // costs the daemon more than the commits themselves.
    let chunks = batches.chunks_timeout(COALESCE_MAX, COALESCE);
    let live = futures_util::StreamExt::flat_map(chunks, move |chunk| {
        let items: Vec<warp::sse::Event> = if all {
            let wire: String = chunk.iter().map(|b| b.wire.as_str()).collect();
            vec![batch_item(&wire)]
        } else {
            chunk
                .iter()
                .flat_map(|b| b.events.iter())
                .filter(|e| filter.admits(e))
                .map(|e| to_sse(e))
                .collect()
        };
        tokio_stream::iter(items)
    });
    let replay = replay.map(|e| to_sse(&e));
    let mut stop = st.shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let events = futures_util::StreamExt::take_until(replay.chain(live), stopped).map(move |e| {
        let _alive = &guard;
        Ok::<_, Infallible>(e)
    });
    let body = warp::sse::keep_alive()
        .interval(Duration::from_secs(15))
        .text(" keepalive")
        .stream(events);
    Ok(warp::sse::reply(body).into_response())
}

/// GET /api/logs?limit=100&level=warn
pub fn logs(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "logs")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(warp::query::<HashMap<String, String>>())
            .map(|_caller: Caller, q: HashMap<String, String>| {
                let limit = q
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(100usize)
                    .min(crate::logbuf::KEPT);
                let logs =
                    crate::logbuf::global().recent(limit, q.get("level").map(String::as_str));
                super::json(&serde_json::json!({ "logs": logs, "count": logs.len() }))
            }),
    )
}

/// GET /api/logs/stream — log entries as server-sent events.
pub fn log_stream(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "logs" / "stream")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(with_state(st))
            .map(|_caller: Caller, st: AppState| {
                let mut stop = st.shutdown.clone();
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let entries = BroadcastStream::new(crate::logbuf::global().subscribe())
                    .take_while(|r| r.is_ok())
                    .filter_map(|r| r.ok());
                let live = futures_util::StreamExt::take_until(entries, stopped).map(|e| {
                    let data = serde_json::to_string(&*e).unwrap_or_default();
                    Ok::<_, Infallible>(warp::sse::Event::default().event("log").data(data))
                });
                let body = warp::sse::keep_alive()
                    .interval(Duration::from_secs(15))
                    .text(" keepalive")
                    .stream(live);
                warp::sse::reply(body).into_response()
            }),
    )
}
