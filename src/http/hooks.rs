//! Harness hook routes with Signet's request and response shapes
//! (`SPEC-agents.md` §1): `POST /api/hooks/{session-start,
//! user-prompt-submit, session-end, remember, recall, pre-compaction,
//! compaction-complete}`, and `GET /api/features` (§4).
//!
//! Each route authenticates like every other (a token in team mode),
//! answers `x-signet-no-hooks: 1` at once with Signet's no-op body, turns
//! the JSON into a typed request and calls one operation of
//! [`crate::memory::hooks::Hooks`]. A malformed body is a 400 (Signet
//! answers 500 `Hook execution failed`).

use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth::{self, Permission};
use super::error::reply;
use super::{body, boxed, json, with_state, AppState};
use crate::memory::hooks::{text_field, EndRequest, HookMeta, PromptRequest};
use crate::memory::{Caller, MemoryError};

/// What a hook route hands its handler.
struct HookCall {
    caller: Caller,
    /// `x-signet-no-hooks: 1`.
    no_op: bool,
    /// `x-signet-runtime-path`.
    runtime_path: Option<String>,
    body: Value,
}

/// `POST /api/hooks/<name>` by a caller allowed `perm`, with its flags and
/// JSON body.
fn hook(
    st: &AppState,
    name: &'static str,
    perm: Permission,
) -> impl Filter<Extract = (HookCall,), Error = Rejection> + Clone {
    warp::path("api")
        .and(warp::path("hooks"))
        .and(warp::path(name))
        .and(warp::path::end())
        .and(warp::post())
        .and(auth::require(st.clone(), perm))
        .and(
            warp::header::optional::<String>("x-signet-no-hooks")
                .map(|v: Option<String>| v.is_some_and(|v| v.trim() == "1")),
        )
        .and(warp::header::optional::<String>("x-signet-runtime-path"))
        .and(body::json::<Value>(
            st.config.settings.server.max_body_bytes,
        ))
        .map(|caller, no_op, runtime_path, body| HookCall {
            caller,
            no_op,
            runtime_path,
            body,
        })
}

impl HookCall {
    fn meta(&self, missing: &str) -> Result<HookMeta, MemoryError> {
        HookMeta::from_json(&self.body, self.runtime_path.as_deref(), missing)
    }
}

/// POST /api/hooks/session-start
pub fn session_start(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "session-start", Permission::Recall)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                if call.no_op {
                    return Ok(json(&json!({ "inject": "", "memories": [] })));
                }
                let meta = match call.meta("harness is required") {
                    Ok(m) => m,
                    Err(e) => return reply::<()>(Err(e)),
                };
                reply(st.hooks.session_start(&call.caller, meta).await)
            }),
    )
}

/// POST /api/hooks/user-prompt-submit
pub fn user_prompt_submit(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "user-prompt-submit", Permission::Recall)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                if call.no_op {
                    return Ok(json(&json!({ "inject": "", "memoryCount": 0 })));
                }
                let req = match PromptRequest::from_json(&call.body, call.runtime_path.as_deref()) {
                    Ok(r) => r,
                    Err(e) => return reply::<()>(Err(e)),
                };
                reply(st.hooks.prompt_submit(&call.caller, req).await)
            }),
    )
}

/// POST /api/hooks/session-end
pub fn session_end(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "session-end", Permission::Recall)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                if call.no_op {
                    return Ok(json(&json!({ "memoriesSaved": 0 })));
                }
                let req = match EndRequest::from_json(&call.body, call.runtime_path.as_deref()) {
                    Ok(r) => r,
                    Err(e) => return reply::<()>(Err(e)),
                };
                reply(st.hooks.session_end(&call.caller, req).await)
            }),
    )
}

/// POST /api/hooks/remember: `{harness*, content*, who?, project?,
/// sessionKey?, idempotencyKey?}` → `{saved: true, id}`. Deduplicated and
/// embedded like any remember (Signet's hook remember is neither).
pub fn remember(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "remember", Permission::Remember)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                if call.no_op {
                    return Ok(json(&json!({ "success": true, "memories": [] })));
                }
                const MISSING: &str = "harness and content are required";
                let parsed = call.meta(MISSING).and_then(|m| {
                    text_field(&call.body, "content")
                        .map(|c| (m, c))
                        .ok_or_else(|| MemoryError::BadRequest(MISSING.into()))
                });
                let (meta, content) = match parsed {
                    Ok(p) => p,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let who = text_field(&call.body, "who");
                let idem = text_field(&call.body, "idempotencyKey");
                reply(
                    st.hooks
                        .remember(&call.caller, meta, content, who, idem)
                        .await,
                )
            }),
    )
}

/// POST /api/hooks/recall: `{harness*, query*, project?, limit?}` →
/// `{results: [{id, content, type, importance, tags, created_at}], count}`,
/// ranked by the hybrid recall (Signet's is an unordered FTS match).
pub fn recall(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "recall", Permission::Recall)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                if call.no_op {
                    return Ok(json(&json!({ "memories": [], "count": 0 })));
                }
                const MISSING: &str = "harness and query are required";
                let parsed = call.meta(MISSING).and_then(|m| {
                    let q = text_field(&call.body, "query")
                        .ok_or_else(|| MemoryError::BadRequest(MISSING.into()))?;
                    let limit = match call.body.get("limit") {
                        None | Some(Value::Null) => 10,
                        Some(v) => match v.as_i64() {
                            Some(n) if n > 0 => n,
                            // Signet's `limit || 10`.
                            Some(0) => 10,
                            _ => {
                                return Err(MemoryError::BadRequest(
                                    "limit must be a positive integer".into(),
                                ))
                            }
                        },
                    };
                    Ok((m, q, limit))
                });
                let (meta, query, limit) = match parsed {
                    Ok(p) => p,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let project = meta.project.clone();
                reply(
                    st.hooks
                        .recall(&call.caller, meta, query, limit, project)
                        .await,
                )
            }),
    )
}

/// POST /api/hooks/pre-compaction (Signet ignores `x-signet-no-hooks`
/// here; so do we, so a harness gets its summary prompt).
pub fn pre_compaction(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "pre-compaction", Permission::Recall)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                let meta = match call.meta("harness is required") {
                    Ok(m) => m,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let context = text_field(&call.body, "sessionContext");
                reply(st.hooks.pre_compaction(&call.caller, meta, context).await)
            }),
    )
}

/// POST /api/hooks/compaction-complete (ignores `x-signet-no-hooks`, as
/// Signet does).
pub fn compaction_complete(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        hook(&st, "compaction-complete", Permission::Remember)
            .and(with_state(st))
            .and_then(|call: HookCall, st: AppState| async move {
                const MISSING: &str = "harness and summary are required";
                let parsed = call.meta(MISSING).and_then(|m| {
                    text_field(&call.body, "summary")
                        .map(|s| (m, s))
                        .ok_or_else(|| MemoryError::BadRequest(MISSING.into()))
                });
                let (meta, summary) = match parsed {
                    Ok(p) => p,
                    Err(e) => return reply::<()>(Err(e)),
                };
                reply(
                    st.hooks
                        .compaction_complete(&call.caller, meta, summary)
                        .await,
                )
            }),
    )
}

/// GET /api/features: the `features:` flags of `agent.yaml`.
pub fn features(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "features")
            .and(warp::get())
            .and(auth::authenticated(st.clone()))
            .and(with_state(st))
            .map(|_caller: Caller, st: AppState| json(&st.config.features())),
    )
}
