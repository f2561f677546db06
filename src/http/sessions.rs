//! Session and checkpoint routes (`SPEC-agents.md` §2): the live sessions,
//! bypass, the session summaries (reachable here: Signet's route is
//! shadowed by `/api/sessions/:key`) and the checkpoints sessions left.

use std::collections::HashMap;

use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{body, boxed, with_state, AppState};
use crate::memory::{Caller, MemoryError};

type Query = HashMap<String, String>;

/// An integer query parameter, `default` when absent.
fn int_param(q: &Query, key: &str, default: i64) -> Result<i64, MemoryError> {
    match q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| MemoryError::BadRequest(format!("{key} must be an integer"))),
    }
}

/// GET /api/sessions
pub fn list(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "sessions")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(with_state(st))
            .and_then(|caller: Caller, st: AppState| async move {
                reply(
                    st.hooks
                        .list(&caller)
                        .await
                        .map(|sessions| json!({ "count": sessions.len(), "sessions": sessions })),
                )
            }),
    )
}

/// GET /api/sessions/summaries?project&depth&limit(50, 0..200)&offset
pub fn summaries(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "sessions" / "summaries")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<Query>())
            .and(with_state(st))
            .and_then(|caller: Caller, q: Query, st: AppState| async move {
                let parsed = (|| {
                    let depth = match q.get("depth") {
                        Some(_) => Some(int_param(&q, "depth", 0)?),
                        None => None,
                    };
                    Ok::<_, MemoryError>((
                        depth,
                        int_param(&q, "limit", 50)?,
                        int_param(&q, "offset", 0)?,
                    ))
                })();
                let (depth, limit, offset) = match parsed {
                    Ok(p) => p,
                    Err(e) => return reply::<()>(Err(e)),
                };
                let project = q.get("project").cloned().filter(|p| !p.is_empty());
                reply(
                    st.hooks
                        .summaries(&caller, project, depth, limit, offset)
                        .await
                        .map(
                            |(summaries, total)| json!({ "summaries": summaries, "total": total }),
                        ),
                )
            }),
    )
}

/// GET /api/sessions/:key
pub fn get(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "sessions" / String)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(with_state(st))
            .and_then(|key: String, caller: Caller, st: AppState| async move {
                let key = decode(&key);
                reply(st.hooks.get(&caller, &key).await)
            }),
    )
}

/// POST /api/sessions/:key/bypass `{enabled: boolean}` → `{key, bypassed}`
pub fn bypass(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "sessions" / String / "bypass")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Remember))
            .and(body::json::<Value>(
                st.config.settings.server.max_body_bytes,
            ))
            .and(with_state(st))
            .and_then(
                |key: String, caller: Caller, b: Value, st: AppState| async move {
                    let Some(enabled) = b.get("enabled").and_then(Value::as_bool) else {
                        return reply::<()>(Err(MemoryError::BadRequest(
                            "enabled (boolean) is required".into(),
                        )));
                    };
                    let key = decode(&key);
                    reply(st.hooks.bypass(&caller, &key, enabled).await)
                },
            ),
    )
}

/// GET /api/checkpoints?project=P&limit=10
pub fn by_project(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "checkpoints")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::query::<Query>())
            .and(with_state(st))
            .and_then(|caller: Caller, q: Query, st: AppState| async move {
                let Some(project) = q.get("project").filter(|p| !p.trim().is_empty()) else {
                    return reply::<()>(Err(MemoryError::BadRequest(
                        "project query parameter required".into(),
                    )));
                };
                let limit = match int_param(&q, "limit", 10) {
                    Ok(l) => l,
                    Err(e) => return reply::<()>(Err(e)),
                };
                reply(
                    st.hooks
                        .checkpoints_of_project(&caller, project, limit)
                        .await
                        .map(|c| json!({ "count": c.len(), "checkpoints": c })),
                )
            }),
    )
}

/// GET /api/checkpoints/:sessionKey
pub fn by_session(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "checkpoints" / String)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(with_state(st))
            .and_then(|key: String, caller: Caller, st: AppState| async move {
                reply(
                    st.hooks
                        .checkpoints_of_session(&caller, decode(&key))
                        .await
                        .map(|c| json!({ "count": c.len(), "checkpoints": c })),
                )
            }),
    )
}

/// A path segment, percent-decoded (session keys may hold `:` or spaces).
fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(decode("a%3Ab%20c"), "a:b c");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz%"), "bad%zz%");
        assert_eq!(decode("end%4"), "end%4");
    }
}
