//! The memory calls the tests make over and over: remember, patch, delete,
//! recover, recall and history. `tok` is an optional bearer token.

use serde_json::{json, Value};

use super::{call, Resp, TestApp};

/// Remember with a full body; asserts 200 (a dedupe is fine) and returns
/// the response body.
pub async fn remember_body(t: &TestApp, body: Value) -> Value {
    let r = t.post("/api/memory/remember", body).await;
    assert_eq!(r.status, 200, "remember failed: {:?}", r.body);
    r.body
}

/// [`remember_body`], returning the id.
pub async fn remember_id(t: &TestApp, body: Value) -> String {
    remember_body(t, body).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Remember `body` as `tok`; asserts 200 and a new (not deduped) record and
/// returns the response body.
pub async fn remember_new(t: &TestApp, body: Value, tok: Option<&str>) -> Value {
    let r = call(t, "POST", "/api/memory/remember", Some(body.clone()), tok).await;
    assert_eq!(r.status, 200, "remember {body}: {:?}", r.body);
    assert_eq!(
        r.body["deduped"], false,
        "unexpected dedupe of {body}: {:?}",
        r.body
    );
    r.body
}

/// [`remember_new`], returning the id.
pub async fn remember_as(t: &TestApp, body: Value, tok: Option<&str>) -> String {
    remember_new(t, body, tok).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// [`remember_as`] of just `content`.
pub async fn remember_content(t: &TestApp, content: &str, tok: Option<&str>) -> String {
    remember_as(t, json!({ "content": content }), tok).await
}

/// [`remember_id`] of `content` in `project` (a dedupe is fine).
pub async fn remember_in(t: &TestApp, content: &str, project: &str) -> String {
    remember_id(t, json!({ "content": content, "project": project })).await
}

pub async fn patch(t: &TestApp, id: &str, body: Value) -> Resp {
    patch_as(t, id, body, None).await
}

pub async fn patch_as(t: &TestApp, id: &str, body: Value, tok: Option<&str>) -> Resp {
    call(t, "PATCH", &format!("/api/memory/{id}"), Some(body), tok).await
}

/// Delete with reason `test`; asserts 200.
pub async fn delete(t: &TestApp, id: &str) {
    let r = delete_q(t, id, "reason=test").await;
    assert_eq!(r.status, 200, "delete {id}: {:?}", r.body);
}

/// DELETE with the arguments in the query string and no body (SDK style).
pub async fn delete_q(t: &TestApp, id: &str, query: &str) -> Resp {
    delete_q_as(t, id, query, None).await
}

pub async fn delete_q_as(t: &TestApp, id: &str, query: &str, tok: Option<&str>) -> Resp {
    call(t, "DELETE", &format!("/api/memory/{id}?{query}"), None, tok).await
}

pub async fn recover(t: &TestApp, id: &str, body: Value) -> Resp {
    t.post(&format!("/api/memory/{id}/recover"), body).await
}

pub async fn recall(t: &TestApp, body: Value) -> Resp {
    t.post("/api/memory/recall", body).await
}

/// Recall as `tok`; asserts 200 and returns the response body.
pub async fn recall_ok(t: &TestApp, body: Value, tok: Option<&str>) -> Value {
    let r = call(t, "POST", "/api/memory/recall", Some(body.clone()), tok).await;
    assert_eq!(r.status, 200, "recall {body}: {:?}", r.body);
    r.body
}

/// Every history event of `id`; asserts 200.
pub async fn history(t: &TestApp, id: &str) -> Vec<Value> {
    let r = t.get(&format!("/api/memory/{id}/history")).await;
    assert_eq!(r.status, 200, "history {id}: {:?}", r.body);
    r.body["history"].as_array().expect("history").clone()
}
