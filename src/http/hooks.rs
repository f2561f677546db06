//! Harness hooks that store and fetch memories: `POST /api/hooks/remember`
//! and `POST /api/hooks/recall` with Signet's request and response shapes
//! (`SPEC-agents.md` §1.4, §1.6), and `GET /api/features` (§4).
//!
//! Both hooks call the same memory operations as the API: a hook remember
//! is deduplicated and embedded like any other (Signet's is neither), and a
//! hook recall is the hybrid recall (Signet's is an unordered FTS match).
//! Session claims, bypass and the other hooks belong to the session routes.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth::{self, Permission};
use super::error::reply;
use super::{body, boxed, json, with_state, AppState};
use crate::memory::requests::RecallBody;
use crate::memory::{Caller, MemoryError, RememberRequest};

/// A hook call: a POST by a caller allowed `perm`, whether it asked for a
/// no-op answer (`x-signet-no-hooks: 1`), and its JSON body.
fn hook_call(
    st: &AppState,
    perm: Permission,
) -> impl Filter<Extract = (Caller, bool, serde_json::Value), Error = Rejection> + Clone {
    warp::post()
        .and(auth::require(st.clone(), perm))
        .and(
            warp::header::optional::<String>("x-signet-no-hooks")
                .map(|v: Option<String>| v.is_some_and(|v| v.trim() == "1")),
        )
        .and(body::json::<serde_json::Value>(
            st.config.settings.server.max_body_bytes,
        ))
}

/// A non-empty string field of a hook body.
fn text(b: &serde_json::Value, key: &str) -> Option<String> {
    b.get(key)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// POST /api/hooks/remember: `{harness*, content*, who?, project?}` →
/// `{saved: true, id}`.
pub fn remember(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "hooks" / "remember")
            .and(hook_call(&st, Permission::Remember))
            .and(with_state(st))
            .and_then(
                |caller: Caller, no_op: bool, b: serde_json::Value, st: AppState| async move {
                    if no_op {
                        return Ok(json(
                            &serde_json::json!({ "success": true, "memories": [] }),
                        ));
                    }
                    let (Some(harness), Some(content)) = (text(&b, "harness"), text(&b, "content"))
                    else {
                        return reply::<()>(Err(MemoryError::BadRequest(
                            "harness and content are required".into(),
                        )));
                    };
                    let req = RememberRequest {
                        content: Some(content),
                        who: text(&b, "who").or(Some(harness)),
                        project: text(&b, "project"),
                        source_type: Some("explicit".into()),
                        ..Default::default()
                    };
                    reply(
                        st.memories
                            .remember(&caller, req)
                            .await
                            .map(|r| serde_json::json!({ "saved": true, "id": r.id })),
                    )
                },
            ),
    )
}

/// POST /api/hooks/recall: `{harness*, query*, project?, limit?}` →
/// `{results: [{id, content, type, importance, tags, created_at}], count}`.
pub fn recall(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "hooks" / "recall")
            .and(hook_call(&st, Permission::Recall))
            .and(with_state(st))
            .and_then(
                |caller: Caller, no_op: bool, b: serde_json::Value, st: AppState| async move {
                    if no_op {
                        return Ok(json(&serde_json::json!({ "memories": [], "count": 0 })));
                    }
                    let (Some(_), Some(query)) = (text(&b, "harness"), text(&b, "query")) else {
                        return reply::<()>(Err(MemoryError::BadRequest(
                            "harness and query are required".into(),
                        )));
                    };
                    let limit = match b.get("limit") {
                        None | Some(serde_json::Value::Null) => 10,
                        Some(v) => match v.as_i64() {
                            Some(n) if n > 0 => n,
                            // Signet's `limit || 10`.
                            Some(0) => 10,
                            _ => {
                                return reply::<()>(Err(MemoryError::BadRequest(
                                    "limit must be a positive integer".into(),
                                )))
                            }
                        },
                    };
                    let body = RecallBody {
                        query: Some(query),
                        limit: Some(limit),
                        project: text(&b, "project"),
                        ..Default::default()
                    };
                    reply(st.memories.recall(&caller, body.into()).await.map(|r| {
                        let results: Vec<serde_json::Value> = r
                            .results
                            .into_iter()
                            .map(|m| {
                                serde_json::json!({
                                    "id": m.id,
                                    "content": m.content,
                                    "type": m.kind,
                                    "importance": m.importance,
                                    "tags": m.tags,
                                    "created_at": m.created_at,
                                })
                            })
                            .collect();
                        serde_json::json!({ "count": results.len(), "results": results })
                    }))
                },
            ),
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
