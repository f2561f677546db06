//! Requests with an optional bearer token, extra headers and JSON body, and
//! checks of the daemon's JSON error answers.

use serde_json::Value;

use super::{into_resp, Resp, TestApp};

/// The request: optional bearer token, extra headers, optional JSON body.
pub fn request_builder(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = t.client.request(m, t.url(path));
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    req
}

/// A request with an optional bearer token, extra headers and JSON body.
pub async fn request(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let req = request_builder(t, method, path, body.as_ref(), token, headers);
    into_resp(req.send().await.expect("request")).await
}

/// Any request with an optional JSON body and bearer token.
pub async fn call(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Resp {
    request(t, method, path, body, token, &[]).await
}

pub async fn get_as(t: &TestApp, path: &str, tok: &str) -> Resp {
    request(t, "GET", path, None, Some(tok), &[]).await
}

pub async fn post_as(t: &TestApp, path: &str, body: Value, tok: &str) -> Resp {
    request(t, "POST", path, Some(body), Some(tok), &[]).await
}

pub fn is_json(r: &Resp) -> bool {
    r.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Assert `status` and a `{"error": "<non-empty string>"}` JSON body.
pub fn assert_error(r: &Resp, status: u16) {
    assert_error_ctx(r, status, "unexpected answer");
}

/// [`assert_error`], naming `ctx` in its failure messages.
pub fn assert_error_ctx(r: &Resp, status: u16, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: body {:?}", r.body);
    let msg = r.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: error body needs an error string: {:?}", r.body));
    assert!(!msg.is_empty(), "{ctx}: empty error message: {:?}", r.body);
    assert!(
        is_json(r),
        "{ctx}: content-type must be application/json: {:?}",
        r.headers
    );
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
