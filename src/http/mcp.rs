//! `ALL /mcp`: MCP Streamable HTTP, stateless, JSON answers (Signet's
//! behaviour, `SPEC-agents.md` §6.1).
//!
//! The edge guard and authentication run first, as on every route (team
//! mode needs a bearer token); the verified caller rides in the request's
//! extensions to the tools ([`crate::mcp`]). The transport rules Signet's
//! clients see are checked here, with JSON-RPC error bodies (`id: null`):
//! 406 without `application/json` and `text/event-stream` in `Accept`, 415
//! without a JSON `Content-Type`, 400 -32700 for a body that is not JSON,
//! 400 for an unsupported `mcp-protocol-version`. `GET` answers an event
//! stream that ends at once, `DELETE` 200 (no session to end), other
//! methods 405. A `POST` then goes to the `rmcp` service: one request, one
//! JSON answer (an array for a batch), 202 for notifications only.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{auth, body, boxed, with_state, AppState};
use crate::mcp::{MemoryTools, PROTOCOL_VERSIONS};
use crate::memory::Caller;

type Service = StreamableHttpService<MemoryTools, NeverSessionManager>;

/// A JSON-RPC error answer with no request id.
fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "error": { "code": code, "message": message }, "id": null });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// The media types an `Accept` or `Content-Type` header lists, lowercased.
fn media_types<'a>(h: &'a HeaderMap, name: &str) -> impl Iterator<Item = String> + 'a {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// A transport-level refusal: status, JSON-RPC code, message.
type Refusal = (StatusCode, i64, String);

/// Signet's checks of a POST, before the SDK sees it.
fn check_post(h: &HeaderMap, raw: &[u8]) -> Result<(), Refusal> {
    let accept: Vec<String> = media_types(h, "accept").collect();
    let takes = |t: &str| accept.iter().any(|a| a == t);
    if !(takes("application/json") && takes("text/event-stream")) {
        return Err((
            StatusCode::NOT_ACCEPTABLE,
            -32000,
            "Not Acceptable: Client must accept both application/json and text/event-stream".into(),
        ));
    }
    if !media_types(h, "content-type").any(|t| t == "application/json") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32000,
            "Unsupported Media Type: Content-Type must be application/json".into(),
        ));
    }
    if let Some(v) = h.get("mcp-protocol-version") {
        let v = v.to_str().unwrap_or("");
        if !PROTOCOL_VERSIONS.contains(&v) {
            return Err((
                StatusCode::BAD_REQUEST,
                -32000,
                format!(
                    "Bad Request: Unsupported protocol version (supported versions: {})",
                    PROTOCOL_VERSIONS.join(", ")
                ),
            ));
        }
    }
    // Validated without building a tree: the SDK parses it for real.
    if serde_json::from_slice::<serde::de::IgnoredAny>(raw).is_err() {
        return Err((
            StatusCode::BAD_REQUEST,
            -32700,
            "Parse error: Invalid JSON".into(),
        ));
    }
    Ok(())
}

/// The stateless SDK service over the memory operations.
pub fn service(st: &AppState) -> Service {
    let memories = st.memories.clone();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        .with_max_request_body_bytes(st.config.settings.server.max_body_bytes)
        // Host and Origin are the edge guard's, in every mode.
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(MemoryTools::new(memories.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

async fn post(svc: Arc<Service>, caller: Caller, headers: HeaderMap, raw: Bytes) -> Response {
    if let Err((status, code, message)) = check_post(&headers, &raw) {
        return rpc_error(status, code, &message);
    }
    // Signet's MCP server calls the daemon as `mcp-server`, a harness.
    let mut caller = caller;
    if !caller.verified && caller.actor == crate::memory::ANONYMOUS {
        caller.actor = "mcp-server".into();
    }
    if caller.actor_type.is_none() {
        caller.actor_type = Some("harness".into());
    }
    // A batch (an array): the SDK takes one message a request, so each
    // goes on its own and the answers come back as one array (202 when
    // all were notifications), as Signet answers batches.
    if raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let items: Vec<serde_json::Value> = match serde_json::from_slice(&raw) {
            Ok(items) => items,
            Err(_) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    -32600,
                    "Invalid Request: a batch must be an array of messages",
                )
            }
        };
        if items.is_empty() {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                "Invalid Request: empty batch",
            );
        }
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            let id = item.get("id").cloned().unwrap_or(serde_json::Value::Null);
            let (status, body) = one(&svc, &caller, &headers, Bytes::from(item.to_string())).await;
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) if status.is_success() => answers.push(v),
                // A notification: nothing to answer.
                _ if status == StatusCode::ACCEPTED || id.is_null() => {}
                _ => answers.push(json!({ "jsonrpc": "2.0", "id": id, "error": {
                    "code": -32600,
                    "message": format!("Invalid Request: {}", String::from_utf8_lossy(&body)),
                }})),
            }
        }
        if answers.is_empty() {
            return warp::reply::with_status(warp::reply(), StatusCode::ACCEPTED).into_response();
        }
        return warp::reply::json(&answers).into_response();
    }
    let (status, body, headers) = one_with_headers(&svc, &caller, headers, raw).await;
    let mut out = Response::new(body.into());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// One message through the SDK: status and body.
async fn one(
    svc: &Service,
    caller: &Caller,
    headers: &HeaderMap,
    raw: Bytes,
) -> (StatusCode, Bytes) {
    let (status, body, _) = one_with_headers(svc, caller, headers.clone(), raw).await;
    (status, body)
}

/// One message through the SDK: status, body and headers.
async fn one_with_headers(
    svc: &Service,
    caller: &Caller,
    headers: HeaderMap,
    raw: Bytes,
) -> (StatusCode, Bytes, HeaderMap) {
    let mut req = warp::http::Request::new(http_body_util::Full::new(raw));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = warp::http::Uri::from_static("/mcp");
    *req.headers_mut() = headers;
    req.extensions_mut().insert(caller.clone());
    let (parts, body) = svc.handle(req).await.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (parts.status, bytes, parts.headers)
}

/// ALL /mcp
pub fn route(st: AppState) -> BoxedFilter<(Response,)> {
    let svc = Arc::new(service(&st));
    let limit = st.config.settings.server.max_body_bytes;
    // Every method but POST (a POST refused by its body filters must keep
    // that refusal, not fall through to a 405).
    let not_post = warp::method().and_then(|m: Method| async move {
        if m == Method::POST {
            Err(warp::reject::not_found())
        } else {
            Ok(m)
        }
    });
    let other = warp::path!("mcp")
        .and(not_post)
        .and(auth::authenticated(st.clone()))
        .map(|m: Method, _caller: Caller| {
            if m == Method::GET {
                // No server-initiated messages: a stream that ends at once.
                warp::http::Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(Bytes::new())
                    .map(|r| r.map(Into::into))
                    .unwrap_or_else(|_| Response::new(Bytes::new().into()))
            } else if m == Method::DELETE {
                // Stateless: no session to end.
                warp::reply::with_status(warp::reply(), StatusCode::OK).into_response()
            } else {
                let mut r = rpc_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    -32000,
                    "Method not allowed.",
                );
                r.headers_mut().insert(
                    "allow",
                    warp::http::HeaderValue::from_static("GET, POST, DELETE"),
                );
                r
            }
        });
    boxed(
        warp::path!("mcp")
            .and(warp::post())
            // The body is read before the caller is authenticated: a 401
            // sent over an unread body makes the server close the
            // connection, and a client that pooled it (the Python SDK
            // probes, then sends `initialize`) saw "disconnected" instead
            // of the 401.
            .and(warp::header::headers_cloned())
            .and(body::bytes(limit))
            .and(auth::authenticated(st.clone()))
            .and(with_state(st))
            .and_then(
                move |headers: HeaderMap, raw: Bytes, caller: Caller, _st: AppState| {
                    let svc = svc.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(post(svc, caller, headers, raw).await)
                    }
                },
            )
            .or(other)
            .unify(),
    )
}
