//! Memory routes: remember, get, list, history, patch, delete, recover,
//! batch forget and batch modify.

use std::collections::HashMap;
use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::{reply, ApiError};
use super::{body, boxed, with_state, AppState};
use crate::memory::requests::parse_if_version;
use crate::memory::{BatchForgetRequest, Caller, Edit, MemoryError, RememberRequest};
use crate::store::memories::{ForgetRequest, RecoverRequest};

/// Path words under `/api/memory/` that name an action, never an id: a
/// wrong method on them is 405, not a lookup of a memory called "remember".
const ACTION_WORDS: &[&str] = &[
    "remember", "save", "recall", "search", "forget", "modify", "similar", "jobs", "feedback",
    "import",
];

/// The `:id` segment of `/api/memory/:id` routes.
pub fn memory_id() -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    warp::path::param::<String>().and_then(|id: String| async move {
        if ACTION_WORDS.contains(&id.as_str()) {
            Err(warp::reject::not_found())
        } else {
            Ok(id)
        }
    })
}

/// `/api/memory/:id` followed by `rest` segments.
fn id_path(rest: Option<&'static str>) -> BoxedFilter<(String,)> {
    let base = warp::path("api").and(warp::path("memory")).and(memory_id());
    match rest {
        None => base.and(warp::path::end()).boxed(),
        Some(seg) => base.and(warp::path(seg)).and(warp::path::end()).boxed(),
    }
}

fn limit(st: &AppState) -> usize {
    st.config.settings.server.max_body_bytes
}

/// POST /api/memory/remember (also /api/memory/save, /api/hook/remember)
pub fn remember(st: AppState) -> BoxedFilter<(Response,)> {
    let paths = warp::path!("api" / "memory" / "remember")
        .or(warp::path!("api" / "memory" / "save"))
        .unify()
        .or(warp::path!("api" / "hook" / "remember"))
        .unify();
    boxed(
        paths
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Remember))
            .and(body::json::<RememberRequest>(limit(&st)))
            .and(with_state(st))
            .and_then(
                |caller: Caller, req: RememberRequest, st: AppState| async move {
                    reply(st.memories.remember(&caller, req).await)
                },
            ),
    )
}

/// GET /api/memory/:id (`?include_deleted=true` also answers for a
/// forgotten memory, which is otherwise 404)
pub fn get(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        id_path(None)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |id: String, caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    let deleted = match q.get("include_deleted").map(String::as_str) {
                        None | Some("false") | Some("0") => false,
                        Some("true") | Some("1") => true,
                        Some(_) => {
                            return reply::<()>(Err(MemoryError::BadRequest(
                                "include_deleted must be true or false".into(),
                            )))
                        }
                    };
                    reply(st.memories.get_record(&caller, id, deleted).await)
                },
            ),
    )
}

fn int_param(q: &HashMap<String, String>, key: &str, default: i64) -> Result<i64, MemoryError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| MemoryError::BadRequest(format!("{key} must be an integer"))),
    }
}

/// GET /api/memories?limit=100&offset=0 with recall's filters (`type`,
/// `tags`, `who`, `project`, `pinned`, `importance_min`, `since`, `until`)
pub fn list(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "memories")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    let args = int_param(&q, "limit", 100)
                        .and_then(|l| Ok((l, int_param(&q, "offset", 0)?)));
                    // The same filters as a recall's query string.
                    match args.and_then(|a| Ok((a, super::search::from_query(&q)?.filter))) {
                        Ok(((l, o), filter)) => {
                            reply(st.memories.list(&caller, l, o, filter).await)
                        }
                        Err(e) => reply::<()>(Err(e)),
                    }
                },
            ),
    )
}

/// GET /api/memory/:id/history?limit=200
pub fn history(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        id_path(Some("history"))
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |id: String, caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    match int_param(&q, "limit", 200) {
                        Ok(l) => reply(st.memories.history(&caller, id, l).await),
                        Err(e) => reply::<()>(Err(e)),
                    }
                },
            ),
    )
}

/// PATCH /api/memory/:id
pub fn modify(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        id_path(None)
            .and(warp::patch())
            .and(auth::require(st.clone(), Permission::Modify))
            .and(body::json::<serde_json::Map<String, serde_json::Value>>(
                limit(&st),
            ))
            .and(with_state(st))
            .and_then(
                |id: String,
                 caller: Caller,
                 b: serde_json::Map<String, serde_json::Value>,
                 st: AppState| async move {
                    match Edit::from_json(id, &b) {
                        Ok(edit) => reply(st.memories.modify(&caller, edit).await),
                        Err(e) => reply::<()>(Err(MemoryError::BadRequest(e))),
                    }
                },
            ),
    )
}

/// `reason`, `force`, `if_version` from a JSON body or, without one, the query.
fn forget_args(
    id: String,
    raw: &[u8],
    q: &HashMap<String, String>,
) -> Result<ForgetRequest, ApiError> {
    let b: serde_json::Map<String, serde_json::Value> = body::parse(raw)?;
    let bad = |m: &str| ApiError::BadRequest(m.to_string());
    let reason = match b.get("reason") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        None | Some(serde_json::Value::Null) => q.get("reason").cloned(),
        Some(_) => return Err(bad("reason must be a string")),
    };
    let force = match b.get("force") {
        Some(serde_json::Value::Bool(f)) => *f,
        None | Some(serde_json::Value::Null) => match q.get("force").map(String::as_str) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => return Err(bad("force must be true or false")),
        },
        Some(_) => return Err(bad("force must be a boolean")),
    };
    let if_version = match b.get("if_version") {
        Some(v) => parse_if_version(Some(v)).map_err(ApiError::BadRequest)?,
        None => match q.get("if_version") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(i) if i > 0 => Some(i),
                _ => return Err(bad("if_version must be a positive integer")),
            },
        },
    };
    Ok(ForgetRequest {
        id,
        reason: reason.filter(|r| !r.trim().is_empty()),
        force,
        if_version,
        scope: Default::default(),
        autonomous: false,
    })
}

/// DELETE /api/memory/:id
pub fn forget(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        id_path(None)
            .and(warp::delete())
            .and(auth::require(st.clone(), Permission::Forget))
            .and(warp::query::<HashMap<String, String>>())
            .and(body::bytes(limit(&st)))
            .and(with_state(st))
            .and_then(
                |id: String,
                 caller: Caller,
                 q: HashMap<String, String>,
                 raw: bytes::Bytes,
                 st: AppState| async move {
                    let req = match forget_args(id, &raw, &q) {
                        Ok(req) => req,
                        Err(e) => return Ok::<_, Infallible>(e.to_response()),
                    };
                    reply(st.memories.forget(&caller, req).await)
                },
            ),
    )
}

#[derive(serde::Deserialize)]
struct RecoverBody {
    reason: Option<String>,
    if_version: Option<serde_json::Value>,
}

/// POST /api/memory/:id/recover
pub fn recover(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        id_path(Some("recover"))
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Recover))
            .and(body::json::<RecoverBody>(limit(&st)))
            .and(with_state(st))
            .and_then(
                |id: String, caller: Caller, b: RecoverBody, st: AppState| async move {
                    let if_version = match parse_if_version(b.if_version.as_ref()) {
                        Ok(v) => v,
                        Err(e) => return reply::<()>(Err(MemoryError::BadRequest(e))),
                    };
                    let req = RecoverRequest {
                        id,
                        reason: b.reason.unwrap_or_default(),
                        if_version,
                        scope: Default::default(),
                    };
                    reply(st.memories.recover(&caller, req).await)
                },
            ),
    )
}

/// POST /api/memory/forget
pub fn batch_forget(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "memory" / "forget")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Forget))
            .and(body::json::<BatchForgetRequest>(limit(&st)))
            .and(with_state(st))
            .and_then(
                |caller: Caller, req: BatchForgetRequest, st: AppState| async move {
                    reply(st.memories.batch_forget(&caller, req).await)
                },
            ),
    )
}

#[derive(serde::Deserialize)]
struct BatchModifyBody {
    patches: Vec<serde_json::Value>,
    reason: Option<String>,
    changed_by: Option<String>,
}

/// POST /api/memory/modify
pub fn batch_modify(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "memory" / "modify")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Modify))
            .and(body::json::<BatchModifyBody>(limit(&st)))
            .and(with_state(st))
            .and_then(
                |caller: Caller, b: BatchModifyBody, st: AppState| async move {
                    let items = b.patches.into_iter().map(Edit::from_value).collect();
                    reply(
                        st.memories
                            .batch_modify(&caller, items, b.reason, b.changed_by)
                            .await,
                    )
                },
            ),
    )
}
