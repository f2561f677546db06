//! Search routes: recall, `GET /api/memory/search`, the legacy
//! `GET /memory/search`, and feedback on what recall returned.

use std::collections::HashMap;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{body, boxed, json, with_state, AppState};
use crate::memory::requests::{RecallBody, TagsInput};
use crate::memory::{Caller, FeedbackRequest, MemoryError, RecallRequest};

/// POST /api/memory/recall
pub fn recall(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "memory" / "recall")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(body::json::<RecallBody>(limit))
            .and(with_state(st))
            .and_then(|caller: Caller, b: RecallBody, st: AppState| async move {
                reply(st.memories.recall(&caller, b.into()).await)
            }),
    )
}

/// POST /api/memory/feedback (Signet's shape: `{sessionKey, feedback}`)
pub fn feedback(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "memory" / "feedback")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Remember))
            .and(body::json::<serde_json::Value>(limit))
            .and(with_state(st))
            .and_then(
                |caller: Caller, b: serde_json::Value, st: AppState| async move {
                    match FeedbackRequest::parse(&b) {
                        Ok(req) => reply(st.memories.feedback(&caller, req).await),
                        Err(e) => reply::<()>(Err(MemoryError::BadRequest(e))),
                    }
                },
            ),
    )
}

/// Query-string form of a recall (empty values are no filter).
pub(crate) fn from_query(q: &HashMap<String, String>) -> Result<RecallRequest, MemoryError> {
    let q: HashMap<&str, &String> = q
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let num = |k: &str| -> Result<Option<f64>, MemoryError> {
        q.get(k)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| MemoryError::BadRequest(format!("{k} must be a number")))
            })
            .transpose()
    };
    let limit = match q.get("limit") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| MemoryError::BadRequest("limit must be an integer".into()))?,
        ),
    };
    let pinned = match q.get("pinned").map(|v| v.as_str()) {
        None => None,
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(_) => {
            return Err(MemoryError::BadRequest(
                "pinned must be true or false".into(),
            ))
        }
    };
    let body = RecallBody {
        query: q.get("q").or_else(|| q.get("query")).map(|v| v.to_string()),
        q: None,
        limit,
        kind: q.get("type").map(|v| v.to_string()),
        tags: q.get("tags").map(|t| TagsInput::Joined(t.to_string())),
        who: q.get("who").map(|v| v.to_string()),
        pinned,
        importance_min: num("importance_min")?,
        since: q.get("since").map(|v| v.to_string()),
        until: q.get("until").map(|v| v.to_string()),
        project: q.get("project").map(|v| v.to_string()),
    };
    Ok(body.into())
}

async fn search_handler(
    caller: Caller,
    q: HashMap<String, String>,
    st: AppState,
) -> Result<Response, std::convert::Infallible> {
    match from_query(&q) {
        Ok(req) => reply(st.memories.recall(&caller, req).await),
        Err(e) => reply::<()>(Err(e)),
    }
}

/// GET /api/memory/search?q=...
pub fn search(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "memory" / "search")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(search_handler),
    )
}

/// GET /memory/search?q=... (legacy; `distinct=who` lists the writers)
pub fn legacy_search(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("memory" / "search")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    match q.get("distinct").map(String::as_str) {
                        None => search_handler(caller, q, st).await,
                        Some("who") => match st.memories.distinct_who(&caller).await {
                            Ok(values) => Ok(json(&serde_json::json!({ "values": values }))),
                            Err(e) => reply::<()>(Err(e)),
                        },
                        Some(other) => reply::<()>(Err(MemoryError::BadRequest(format!(
                            "distinct supports only 'who', not '{other}'"
                        )))),
                    }
                },
            ),
    )
}
