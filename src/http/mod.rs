//! The HTTP front (warp): routes, state and the rejection handler.
//!
//! Each route is one function: path first, then method (so a known path
//! with the wrong method is 405, an unknown path 404), then the caller and
//! its permission, then the body, then a handler that calls one memory
//! operation and renders it. Every response is JSON (but the dashboard's
//! static files, see [`dashboard`]) and carries `x-signet-request-id`.

pub mod auth;
pub mod auth_api;
pub mod body;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod events;
pub mod hooks;
pub mod mcp;
pub mod memory;
pub mod ops;
pub mod pipeline;
pub mod repair;
pub mod search;
pub mod sessions;
pub mod transfer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use warp::filters::BoxedFilter;
use warp::http::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::actors::Registry;
use crate::config::Config;
use crate::memory::MemoryService;

/// Everything the handlers use. Requests share it through an [`AppState`]
/// (one `Arc`): cloning a struct of many `Arc`s per request cost ~20% of a
/// cached recall in contended reference counts.
pub struct AppContext {
    pub config: Arc<Config>,
    pub auth: Arc<auth::AuthState>,
    /// The browser boundary (Host, Origin, Sec-Fetch-Site, CORS).
    pub edge: Arc<edge::EdgePolicy>,
    pub memories: MemoryService,
    /// Token mint and revoke.
    pub tokens: crate::memory::tokens::Tokens,
    /// Harness hooks and the live sessions.
    pub hooks: crate::memory::hooks::Hooks,
    pub registry: Registry,
    /// Health, status, diagnostics, metrics, analytics, pipeline state.
    pub ops: crate::memory::ops::Ops,
    /// Connected SSE clients (the event stream counts them).
    pub sse_clients: Arc<AtomicU64>,
    /// Per-route request figures.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The latest `pipeline.status` frame, for SSE clients that ask for it
    /// (see `pipeline::publish_status`).
    pub pipeline_status: tokio::sync::watch::Sender<Option<bytes::Bytes>>,
    /// Becomes true when the daemon starts shutting down (ends streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// What every handler can reach: one reference-counted pointer.
pub type AppState = Arc<AppContext>;

/// Pass the state into a handler.
pub fn with_state(
    st: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || st.clone())
}

/// Every route, with errors rendered and the request id echoed.
pub fn routes(st: AppState) -> BoxedFilter<(Response,)> {
    let telemetry = st.telemetry.clone();
    let policy = st.edge.clone();
    // Routes are grouped and boxed so the `or` chain stays shallow.
    let operations = boxed(
        ops::health(st.clone())
            .or(dashboard::route())
            .unify()
            .or(ops::status(st.clone()))
            .unify()
            .or(ops::metrics(st.clone()))
            .unify()
            .or(ops::diagnostics(st.clone()))
            .unify()
            .or(ops::analytics(st.clone()))
            .unify()
            .or(repair::action(st.clone()))
            .unify()
            .or(repair::report(st.clone()))
            .unify()
            .or(pipeline::status(st.clone()))
            .unify()
            .or(pipeline::embeddings(st.clone()))
            .unify(),
    );
    let streams_and_auth = boxed(
        mcp::route(st.clone())
            .or(events::stream(st.clone()))
            .unify()
            .or(events::log_stream(st.clone()))
            .unify()
            .or(events::logs(st.clone()))
            .unify()
            .or(auth_api::mint(st.clone()))
            .unify()
            .or(auth_api::whoami(st.clone()))
            .unify()
            .or(auth_api::status(st.clone()))
            .unify()
            .or(auth_api::revoke(st.clone()))
            .unify()
            .or(auth_api::session_token(st.clone()))
            .unify(),
    );
    let hooks_and_sessions = boxed(
        hooks::session_start(st.clone())
            .or(hooks::user_prompt_submit(st.clone()))
            .unify()
            .or(hooks::session_end(st.clone()))
            .unify()
            .or(hooks::pre_compaction(st.clone()))
            .unify()
            .or(hooks::compaction_complete(st.clone()))
            .unify()
            .or(hooks::remember(st.clone()))
            .unify()
            .or(hooks::recall(st.clone()))
            .unify()
            .or(sessions::list(st.clone()))
            .unify()
            .or(sessions::summaries(st.clone()))
            .unify()
            .or(sessions::get(st.clone()))
            .unify()
            .or(sessions::bypass(st.clone()))
            .unify()
            .or(sessions::by_project(st.clone()))
            .unify()
            .or(sessions::by_session(st.clone()))
            .unify(),
    );
    let searches = boxed(
        memory::remember(st.clone())
            .or(transfer::import(st.clone()))
            .unify()
            .or(search::recall(st.clone()))
            .unify()
            .or(search::search(st.clone()))
            .unify()
            .or(search::feedback(st.clone()))
            .unify()
            .or(search::legacy_search(st.clone()))
            .unify()
            .or(pipeline::similar(st.clone()))
            .unify()
            .or(pipeline::job(st.clone()))
            .unify()
            .or(hooks::features(st.clone()))
            .unify(),
    );
    let records = boxed(
        memory::batch_forget(st.clone())
            .or(memory::batch_modify(st.clone()))
            .unify()
            .or(memory::list(st.clone()))
            .unify()
            .or(memory::history(st.clone()))
            .unify()
            .or(memory::recover(st.clone()))
            .unify()
            .or(memory::get(st.clone()))
            .unify()
            .or(memory::modify(st.clone()))
            .unify()
            .or(memory::forget(st))
            .unify(),
    );
    // The busiest routes (remember, recall) are tried first; `searches`
    // must stay before `records`, whose `/api/memory/:id` would take
    // `/api/memory/search`.
    let routes = boxed(
        searches
            .or(operations)
            .unify()
            .or(streams_and_auth)
            .unify()
            .or(hooks_and_sessions)
            .unify()
            .or(records)
            .unify(),
    );
    // The browser boundary runs before any route (and answers preflights).
    let api = edge::guard(policy.clone())
        .and(routes)
        .recover(error::handle_rejection)
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(warp::any().map(Instant::now))
        .and(warp::header::optional::<String>("x-signet-request-id"))
        .and(warp::header::optional::<String>("origin"))
        .and(api)
        .map(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  t0: Instant,
                  rid: Option<String>,
                  origin: Option<String>,
                  mut resp: Response| {
                policy.decorate(origin.as_deref(), &mut resp);
                telemetry.record(
                    method.as_str(),
                    path.as_str(),
                    resp.status().as_u16(),
                    t0.elapsed(),
                );
                let value = rid
                    .filter(|r| r.len() <= 128)
                    .and_then(|r| HeaderValue::from_str(&r).ok())
                    .unwrap_or_else(|| {
                        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                            .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
                    });
                resp.headers_mut().insert("x-signet-request-id", value);
                resp
            },
        )
        .boxed()
}

/// Box a route's filter (keeps compile times and types small).
pub(crate) fn boxed<F>(f: F) -> BoxedFilter<(Response,)>
where
    F: Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    f.boxed()
}

/// Render any serialisable value as a JSON response.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> Response {
    warp::reply::json(v).into_response()
}
