//! Black-box tests of the HTTP API (SPEC §2, §5 and the keyword part of §6):
//! each test starts a real daemon on port 0 over a fresh temp workspace and
//! talks to it over HTTP only.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{
    assert_error, delete_q, history, into_resp, is_json, patch, recall, recover, remember_body,
    remember_id, request, spawn_app, spawn_in, spawn_with, Resp, TestApp, UNKNOWN_ID,
};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Assert a refused mutation: status code, `status` field and `currentVersion`.
fn assert_refused(r: &Resp, code: u16, status: &str, id: &str, current: Option<i64>) {
    assert_error(r, code);
    assert_eq!(r.body["status"], status, "{:?}", r.body);
    assert_eq!(r.body["id"], id, "{:?}", r.body);
    if let Some(v) = current {
        assert_eq!(r.body["currentVersion"], v, "{:?}", r.body);
    }
}

async fn get_memory(t: &TestApp, id: &str) -> Resp {
    t.get(&format!("/api/memory/{id}")).await
}

/// GET with a query string built (and encoded) by reqwest.
async fn get_query(t: &TestApp, path: &str, query: &[(&str, &str)]) -> Resp {
    let r = t
        .client
        .get(t.url(path))
        .query(query)
        .send()
        .await
        .expect("request");
    into_resp(r).await
}

/// Ids of a `results` (recall) or `candidates` / `memories` array.
fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v:?}"))
        .iter()
        .map(|x| x["id"].as_str().expect("id").to_string())
        .collect()
}

fn id_set(v: &Value) -> BTreeSet<String> {
    ids_of(v).into_iter().collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Ids a keyword recall returns for `query`.
async fn recall_ids(t: &TestApp, query: &str) -> Vec<String> {
    let r = recall(t, json!({ "query": query })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    ids_of(&r.body["results"])
}

/// `confirmToken`: first 32 hex chars of sha256 over the sorted ids joined by `|`.
fn expected_token(ids: &[String]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort();
    hex::encode(Sha256::digest(sorted.join("|").as_bytes()))[..32].to_string()
}

// ---------------------------------------------------------------------------
// health and status
// ---------------------------------------------------------------------------

#[tokio::test]
async fn health_reports_status_uptime_pid_version_port_agents_dir_and_db() {
    let t = spawn_app().await;
    let r = t.get("/health").await;
    assert_eq!(r.status, 200);
    assert!(is_json(&r));
    let b = &r.body;
    assert_eq!(b["status"], "healthy");
    assert!(b["uptime"].as_f64().expect("uptime number") >= 0.0);
    assert_eq!(b["pid"], std::process::id());
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"));
    let port: u16 = t.base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(b["port"], port);
    assert_eq!(
        b["agentsDir"].as_str().expect("agentsDir"),
        t.workspace.to_str().unwrap()
    );
    assert!(!b["db"].is_null(), "db must be reported: {b:?}");
    t.stop().await;
}

#[tokio::test]
async fn status_reports_running_with_pipeline_health_and_embedding() {
    let t = spawn_app().await;
    let r = t.get("/api/status").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    let b = &r.body;
    assert_eq!(b["status"], "running");
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(b["pid"], std::process::id());
    assert!(b["uptime"].is_number());
    assert!(b["startedAt"].is_string());
    assert!(b["port"].is_number());
    assert!(b["agentsDir"].is_string());
    assert!(b["memoryDb"].is_string());
    let p = &b["pipelineV2"];
    assert!(p.is_object(), "pipelineV2 object: {b:?}");
    for k in [
        "enabled",
        "shadowMode",
        "mutationsFrozen",
        "graphEnabled",
        "autonomousEnabled",
    ] {
        assert!(p[k].is_boolean(), "pipelineV2.{k} must be a boolean: {p:?}");
    }
    assert_eq!(p["mutationsFrozen"], false);
    assert!(p.get("extractionModel").is_some(), "{p:?}");
    let score = b["health"]["score"].as_f64().expect("health.score");
    assert!((0.0..=1.0).contains(&score));
    assert_eq!(b["health"]["status"], "healthy");
    let e = &b["embedding"];
    assert!(e["provider"].is_string(), "{e:?}");
    assert!(e["model"].is_string(), "{e:?}");
    assert!(e["available"].is_boolean(), "{e:?}");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// remember
// ---------------------------------------------------------------------------

#[tokio::test]
async fn remember_returns_the_new_memory_and_stores_the_defaults() {
    let t = spawn_app().await;
    let r = t
        .post(
            "/api/memory/remember",
            json!({ "content": "The office is on the third floor" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    let b = &r.body;
    let id = b["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id is a UUID: {id}");
    assert_eq!(b["type"], "fact");
    assert_eq!(b["tags"], Value::Null);
    assert_eq!(b["pinned"], false);
    assert_eq!(b["importance"], 0.8);
    assert_eq!(b["content"], "The office is on the third floor");
    assert!(b["embedded"].is_boolean());
    assert_eq!(b["deduped"], false);

    let g = get_memory(&t, id).await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert_eq!(g.body["importance"], 0.8);
    assert_eq!(g.body["who"], "daemon");
    assert_eq!(g.body["source_type"], "manual");
    assert_eq!(g.body["version"], 1);
    assert_eq!(g.body["pinned"], 0);
    assert_eq!(g.body["is_deleted"], 0);
    t.stop().await;
}

#[tokio::test]
async fn save_and_hook_remember_are_aliases_of_remember() {
    let t = spawn_app().await;
    for (path, content) in [
        ("/api/memory/save", "saved through the save alias"),
        ("/api/hook/remember", "saved through the hook alias"),
    ] {
        let r = t.post(path, json!({ "content": content })).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(r.body["content"], content);
        assert_eq!(r.body["deduped"], false);
        for k in ["id", "type", "tags", "pinned", "importance", "embedded"] {
            assert!(r.body.get(k).is_some(), "{path}: missing {k}: {:?}", r.body);
        }
        let id = r.body["id"].as_str().unwrap();
        assert_eq!(get_memory(&t, id).await.body["content"], content);
    }
    // The same content through another alias dedupes against the first.
    let r = t
        .post(
            "/api/memory/remember",
            json!({ "content": "saved through the save alias" }),
        )
        .await;
    assert_eq!(r.body["deduped"], true);
    t.stop().await;
}

#[tokio::test]
async fn critical_prefix_pins_the_memory_with_importance_one() {
    let t = spawn_app().await;
    let b = remember_body(
        &t,
        json!({ "content": "critical: the deploy key lives in vault" }),
    )
    .await;
    assert_eq!(b["pinned"], true);
    assert_eq!(b["importance"], 1.0);
    assert_eq!(b["content"], "the deploy key lives in vault");
    let g = get_memory(&t, b["id"].as_str().unwrap()).await;
    assert_eq!(g.body["pinned"], 1);
    assert_eq!(g.body["importance"], 1.0);
    t.stop().await;
}

#[tokio::test]
async fn tag_prefix_sets_lowercased_tags_and_is_stripped_from_content() {
    let t = spawn_app().await;
    let b = remember_body(&t, json!({ "content": "[a,B]: tagged by prefix" })).await;
    assert_eq!(b["tags"], "a,b");
    assert_eq!(b["content"], "tagged by prefix");
    let b = remember_body(
        &t,
        json!({ "content": "critical: [Ops, DB]: backups run nightly" }),
    )
    .await;
    assert_eq!(b["tags"], "ops,db");
    assert_eq!(b["pinned"], true);
    assert_eq!(b["importance"], 1.0);
    assert_eq!(b["content"], "backups run nightly");
    let g = get_memory(&t, b["id"].as_str().unwrap()).await;
    assert_eq!(g.body["tags"], "ops,db");
    t.stop().await;
}

#[tokio::test]
async fn body_fields_beat_prefixes() {
    let t = spawn_app().await;
    let b = remember_body(
        &t,
        json!({
            "content": "critical: [a,b]: body wins over prefix",
            "pinned": false,
            "importance": 0.3,
            "tags": ["Zed"],
        }),
    )
    .await;
    assert_eq!(b["pinned"], false);
    assert_eq!(b["importance"], 0.3);
    assert_eq!(b["tags"], "zed");
    assert_eq!(b["content"], "body wins over prefix");
    t.stop().await;
}

#[tokio::test]
async fn type_is_inferred_from_keywords_when_not_given() {
    let t = spawn_app().await;
    for (content, kind) in [
        ("I prefer dark mode in every editor", "preference"),
        ("We decided to ship on Tuesdays", "decision"),
        ("I learned that WAL mode helps concurrency", "learning"),
        ("There is a bug in the login form", "issue"),
        ("Never commit secrets to the repository", "rule"),
        ("The sky over the harbour is grey", "fact"),
    ] {
        let b = remember_body(&t, json!({ "content": content })).await;
        assert_eq!(b["type"], kind, "{content}");
        let g = get_memory(&t, b["id"].as_str().unwrap()).await;
        assert_eq!(g.body["type"], kind, "{content}");
    }
    t.stop().await;
}

#[tokio::test]
async fn an_explicit_valid_type_is_kept_and_an_unknown_one_is_inferred() {
    let t = spawn_app().await;
    let b = remember_body(
        &t,
        json!({ "content": "I prefer tea but this is a decision", "type": "decision" }),
    )
    .await;
    assert_eq!(b["type"], "decision");
    let b = remember_body(
        &t,
        json!({ "content": "Never run migrations by hand", "type": "not-a-type" }),
    )
    .await;
    assert_eq!(b["type"], "rule");
    t.stop().await;
}

#[tokio::test]
async fn normalized_duplicate_content_returns_the_same_id_with_deduped_true() {
    let t = spawn_app().await;
    let first = remember_body(&t, json!({ "content": "Hello  World." })).await;
    assert_eq!(first["deduped"], false);
    let second = remember_body(&t, json!({ "content": "hello world" })).await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["deduped"], true);
    let third = remember_body(&t, json!({ "content": "  HELLO\tworld!? " })).await;
    assert_eq!(third["id"], first["id"]);
    assert_eq!(third["deduped"], true);
    let list = t.get("/api/memories").await;
    assert_eq!(list.body["stats"]["total"], 1);
    t.stop().await;
}

#[tokio::test]
async fn same_source_type_and_source_id_dedupes_different_content() {
    let t = spawn_app().await;
    let a = remember_body(
        &t,
        json!({ "content": "first import of the doc", "sourceType": "import", "sourceId": "doc-1" }),
    )
    .await;
    let b = remember_body(
        &t,
        json!({ "content": "second, different text", "sourceType": "import", "sourceId": "doc-1" }),
    )
    .await;
    assert_eq!(b["id"], a["id"]);
    assert_eq!(b["deduped"], true);
    assert_eq!(b["content"], "first import of the doc");
    // Another source id is a new memory.
    let c = remember_body(
        &t,
        json!({ "content": "third text", "sourceType": "import", "sourceId": "doc-2" }),
    )
    .await;
    assert_ne!(c["id"], a["id"]);
    assert_eq!(c["deduped"], false);
    let g = get_memory(&t, a["id"].as_str().unwrap()).await;
    assert_eq!(g.body["source_type"], "import");
    assert_eq!(g.body["source_id"], "doc-1");
    t.stop().await;
}

#[tokio::test]
async fn deleted_content_can_be_remembered_again_as_a_new_memory() {
    let t = spawn_app().await;
    let a = t.remember("ephemeral note about lunch").await;
    assert_eq!(delete_q(&t, &a, "reason=gone").await.status, 200);
    let b = remember_body(&t, json!({ "content": "ephemeral note about lunch" })).await;
    assert_ne!(b["id"], a.as_str());
    assert_eq!(b["deduped"], false);
    t.stop().await;
}

#[tokio::test]
async fn tags_are_accepted_as_an_array_or_a_comma_string() {
    let t = spawn_app().await;
    let a = remember_body(
        &t,
        json!({ "content": "array tags", "tags": ["One", "two"] }),
    )
    .await;
    assert_eq!(a["tags"], "one,two");
    let b = remember_body(
        &t,
        json!({ "content": "string tags", "tags": "Three, four" }),
    )
    .await;
    assert_eq!(b["tags"], "three,four");
    let g = get_memory(&t, a["id"].as_str().unwrap()).await;
    assert_eq!(g.body["tags"], "one,two");
    t.stop().await;
}

#[tokio::test]
async fn remember_stores_who_project_and_source_from_the_body() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({
            "content": "body supplied metadata",
            "who": "claude",
            "project": "proj-x",
            "agent": "agent-7",
            "user": "user-3",
            "sourceType": "session",
            "sourceId": "s-1",
        }),
    )
    .await;
    let g = get_memory(&t, &id).await;
    assert_eq!(g.body["who"], "claude");
    assert_eq!(g.body["project"], "proj-x");
    assert_eq!(g.body["agent"], "agent-7");
    assert_eq!(g.body["user"], "user-3");
    assert_eq!(g.body["source_type"], "session");
    assert_eq!(g.body["source_id"], "s-1");
    t.stop().await;
}

#[tokio::test]
async fn remember_writes_a_created_history_row() {
    let t = spawn_app().await;
    let id = t.remember("a memory with a birth certificate").await;
    let h = history(&t, &id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["event"], "created");
    assert_eq!(h[0]["newContent"], "a memory with a birth certificate");
    assert_eq!(h[0]["oldContent"], Value::Null);
    assert!(h[0]["createdAt"].is_string());
    t.stop().await;
}

#[tokio::test]
async fn created_history_row_names_the_header_actor_when_the_body_has_no_who() {
    let t = spawn_app().await;
    let r = request(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "written by alice through a header" })),
        None,
        &[
            ("x-signet-actor", "alice"),
            ("x-signet-request-id", "req-remember-1"),
            ("x-signet-session-id", "sess-remember-1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let h = history(&t, id).await;
    assert_eq!(h[0]["event"], "created");
    assert_eq!(h[0]["requestId"], "req-remember-1");
    assert_eq!(h[0]["sessionId"], "sess-remember-1");
    assert_eq!(h[0]["changedBy"], "alice", "{:?}", h[0]);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// bad input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn remember_with_empty_content_is_400_json() {
    let t = spawn_app().await;
    for content in ["", "   ", "\n\t "] {
        let r = t
            .post("/api/memory/remember", json!({ "content": content }))
            .await;
        assert_error(&r, 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn remember_without_content_is_400_json() {
    let t = spawn_app().await;
    assert_error(
        &t.post("/api/memory/remember", json!({ "type": "fact" }))
            .await,
        400,
    );
    assert_error(&t.post("/api/memory/remember", json!({})).await, 400);
    assert_error(&t.raw("POST", "/api/memory/remember", None).await, 400);
    t.stop().await;
}

#[tokio::test]
async fn remember_with_content_over_64_kib_is_413_json() {
    let t = spawn_app().await;
    let r = t
        .post(
            "/api/memory/remember",
            json!({ "content": "x".repeat(64 * 1024 + 1) }),
        )
        .await;
    assert_error(&r, 413);
    // Exactly the maximum is fine.
    let r = t
        .post(
            "/api/memory/remember",
            json!({ "content": "y".repeat(64 * 1024) }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn remember_with_importance_out_of_range_is_400_json() {
    let t = spawn_app().await;
    for imp in [json!(1.5), json!(-0.1), json!(2)] {
        let r = t
            .post(
                "/api/memory/remember",
                json!({ "content": "importance test", "importance": imp }),
            )
            .await;
        assert_error(&r, 400);
    }
    assert_eq!(t.get("/api/memories").await.body["stats"]["total"], 0);
    t.stop().await;
}

#[tokio::test]
async fn remember_with_wrong_field_types_is_400_json() {
    let t = spawn_app().await;
    for body in [
        json!({ "content": 5 }),
        json!({ "content": ["a"] }),
        json!({ "content": "ok", "importance": "high" }),
        json!({ "content": "ok", "pinned": "yes" }),
        json!({ "content": "ok", "tags": 7 }),
        json!(["content", "x"]),
        json!("just a string"),
    ] {
        let r = t.post("/api/memory/remember", body.clone()).await;
        assert_error(&r, 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400_json() {
    let t = spawn_app().await;
    for (method, path) in [
        ("POST", "/api/memory/remember"),
        ("POST", "/api/memory/recall"),
        ("POST", "/api/memory/forget"),
        ("POST", "/api/memory/modify"),
        ("PATCH", &format!("/api/memory/{UNKNOWN_ID}")),
        ("DELETE", &format!("/api/memory/{UNKNOWN_ID}?reason=test")),
        ("POST", &format!("/api/memory/{UNKNOWN_ID}/recover")),
    ] {
        let r = t
            .raw(method, path, Some(b"{\"content\": \"unterminated".to_vec()))
            .await;
        assert_error(&r, 400);
        let r = t.raw(method, path, Some(b"not json at all".to_vec())).await;
        assert_error(&r, 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn body_over_one_mib_is_413_json() {
    let t = spawn_app().await;
    let big = json!({ "content": "z".repeat(1024 * 1024 + 10) });
    let r = t.post("/api/memory/remember", big.clone()).await;
    assert_error(&r, 413);
    let r = t
        .post(
            "/api/memory/recall",
            json!({ "query": "z".repeat(1024 * 1024 + 10) }),
        )
        .await;
    assert_error(&r, 413);
    assert_eq!(t.get("/api/memories").await.body["stats"]["total"], 0);
    t.stop().await;
}

#[tokio::test]
async fn body_with_a_non_json_content_type_is_still_parsed_as_json() {
    let t = spawn_app().await;
    let r = t
        .client
        .post(t.url("/api/memory/remember"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"content":"sent the curl -d way","tags":"curl"}"#)
        .send()
        .await
        .expect("request");
    let r = into_resp(r).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["content"], "sent the curl -d way");
    assert_eq!(r.body["tags"], "curl");

    let r = t
        .client
        .post(t.url("/api/memory/recall"))
        .header("content-type", "text/plain")
        .body(r#"{"query":"curl"}"#)
        .send()
        .await
        .expect("request");
    let r = into_resp(r).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);

    // No content type at all.
    let r = t
        .client
        .post(t.url("/api/memory/remember"))
        .body(r#"{"content":"no content type header"}"#)
        .send()
        .await
        .expect("request");
    let r = into_resp(r).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// get and list
// ---------------------------------------------------------------------------

#[tokio::test]
async fn get_memory_returns_the_snake_case_record_with_integer_flags() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({ "content": "critical: [x,y]: the full record", "who": "tester" }),
    )
    .await;
    let r = get_memory(&t, &id).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    let b = &r.body;
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["content"], "the full record");
    assert_eq!(b["pinned"], 1);
    assert!(b["pinned"].is_i64(), "pinned is an integer: {b:?}");
    assert_eq!(b["is_deleted"], 0);
    assert!(b["is_deleted"].is_i64(), "is_deleted is an integer: {b:?}");
    assert_eq!(b["tags"], "x,y");
    assert_eq!(b["who"], "tester");
    assert_eq!(b["version"], 1);
    assert_eq!(b["access_count"], 0);
    let hash = b["content_hash"].as_str().expect("content_hash");
    assert_eq!(hash.len(), 64);
    assert_eq!(
        hash,
        hex::encode(Sha256::digest(b"the full record")),
        "content_hash is sha256 of the normalized content"
    );
    for k in [
        "type",
        "importance",
        "project",
        "agent",
        "user",
        "source_type",
        "source_id",
        "deleted_at",
        "last_accessed",
        "created_at",
        "updated_at",
        "updated_by",
        "embedding_model",
        "extraction_status",
    ] {
        assert!(b.get(k).is_some(), "record lacks {k}: {b:?}");
    }
    for k in ["isDeleted", "contentHash", "createdAt", "sourceType"] {
        assert!(b.get(k).is_none(), "record must be snake_case, found {k}");
    }
    t.stop().await;
}

#[tokio::test]
async fn get_of_an_unknown_id_is_404_not_found() {
    let t = spawn_app().await;
    let r = get_memory(&t, UNKNOWN_ID).await;
    assert_error(&r, 404);
    assert_eq!(r.body, json!({ "error": "not found" }));
    let r = get_memory(&t, "not-a-uuid").await;
    assert_error(&r, 404);
    t.stop().await;
}

#[tokio::test]
async fn get_of_a_deleted_memory_is_404() {
    let t = spawn_app().await;
    let id = t.remember("soon to be gone").await;
    assert_eq!(delete_q(&t, &id, "reason=test").await.status, 200);
    let r = get_memory(&t, &id).await;
    assert_error(&r, 404);
    assert_eq!(r.body["error"], "not found");
    t.stop().await;
}

#[tokio::test]
async fn list_returns_live_memories_with_stats() {
    let t = spawn_app().await;
    let a = t.remember("list item alpha").await;
    let b = remember_id(&t, json!({ "content": "critical: list item bravo" })).await;
    let c = remember_id(
        &t,
        json!({ "content": "list item charlie", "importance": 0.95 }),
    )
    .await;
    let d = t.remember("list item delta").await;
    assert_eq!(delete_q(&t, &d, "reason=x").await.status, 200);

    let r = t.get("/api/memories").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(id_set(&r.body["memories"]), set(&[&a, &b, &c]));
    let stats = &r.body["stats"];
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["withEmbeddings"].as_i64().map(|n| n >= 0), Some(true));
    assert_eq!(
        stats["critical"], 2,
        "pinned or importance >= 0.9: {stats:?}"
    );
    for m in r.body["memories"].as_array().unwrap() {
        assert_eq!(m["is_deleted"], 0);
        assert!(m["pinned"].is_i64());
    }
    t.stop().await;
}

#[tokio::test]
async fn list_paginates_newest_first_with_limit_and_offset() {
    let t = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(t.remember(&format!("page item number {i}")).await);
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    for (offset, expect) in [(0, 2), (2, 2), (4, 1), (5, 0)] {
        let r = t
            .get(&format!("/api/memories?limit=2&offset={offset}"))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page = ids_of(&r.body["memories"]);
        assert_eq!(page.len(), expect, "offset {offset}");
        assert_eq!(r.body["stats"]["total"], 5);
        seen.extend(page);
    }
    assert_eq!(seen, ids);
    t.stop().await;
}

#[tokio::test]
async fn list_with_a_bad_limit_or_offset_is_400() {
    let t = spawn_app().await;
    for q in [
        "limit=abc",
        "limit=0",
        "limit=-5",
        "offset=-1",
        "offset=xyz",
        "limit=1.5",
    ] {
        let r = t.get(&format!("/api/memories?{q}")).await;
        assert_error(&r, 400);
    }
    t.stop().await;
}

// ---------------------------------------------------------------------------
// history
// ---------------------------------------------------------------------------

#[tokio::test]
async fn history_lists_every_event_oldest_first_in_camel_case() {
    let t = spawn_app().await;
    let id = t.remember("history original text").await;
    let r = patch(
        &t,
        &id,
        json!({ "content": "history edited text", "reason": "typo fix" }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(delete_q(&t, &id, "reason=cleanup").await.status, 200);
    assert_eq!(
        recover(&t, &id, json!({ "reason": "oops" })).await.status,
        200
    );

    let r = t.get(&format!("/api/memory/{id}/history")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["memoryId"], id.as_str());
    assert_eq!(r.body["count"], 4);
    let h = r.body["history"].as_array().unwrap();
    let events: Vec<&str> = h.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["created", "updated", "deleted", "recovered"]);

    assert_eq!(h[1]["oldContent"], "history original text");
    assert_eq!(h[1]["newContent"], "history edited text");
    assert_eq!(h[1]["reason"], "typo fix");
    assert_eq!(h[2]["reason"], "cleanup");
    assert_eq!(h[3]["reason"], "oops");
    let mut last = String::new();
    for e in h {
        for k in [
            "id",
            "event",
            "oldContent",
            "newContent",
            "changedBy",
            "actorType",
            "reason",
            "metadata",
            "createdAt",
            "sessionId",
            "requestId",
        ] {
            assert!(e.get(k).is_some(), "history item lacks {k}: {e:?}");
        }
        for k in ["old_content", "changed_by", "created_at"] {
            assert!(e.get(k).is_none(), "history must be camelCase, found {k}");
        }
        let at = e["createdAt"].as_str().unwrap().to_string();
        assert!(at >= last, "oldest first: {at} after {last}");
        last = at;
    }
    t.stop().await;
}

#[tokio::test]
async fn history_limit_returns_the_oldest_events_first() {
    let t = spawn_app().await;
    let id = t.remember("history limit subject").await;
    for i in 0..3 {
        let r = patch(
            &t,
            &id,
            json!({ "importance": 0.1 * f64::from(i + 1), "reason": "tune" }),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = t.get(&format!("/api/memory/{id}/history?limit=2")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["count"], 2);
    let h = r.body["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["event"], "created");
    assert_eq!(h[1]["event"], "updated");
    assert_eq!(history(&t, &id).await.len(), 4);
    t.stop().await;
}

#[tokio::test]
async fn history_of_an_unknown_id_is_404() {
    let t = spawn_app().await;
    let r = t.get(&format!("/api/memory/{UNKNOWN_ID}/history")).await;
    assert_error(&r, 404);
    t.stop().await;
}

#[tokio::test]
async fn history_of_a_deleted_memory_is_still_readable() {
    let t = spawn_app().await;
    let id = t.remember("deleted but audited").await;
    assert_eq!(delete_q(&t, &id, "reason=bye").await.status, 200);
    let h = history(&t, &id).await;
    let events: Vec<&str> = h.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["created", "deleted"]);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// PATCH
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patch_without_a_reason_is_400() {
    let t = spawn_app().await;
    let id = t.remember("patch needs a reason").await;
    assert_error(&patch(&t, &id, json!({ "importance": 0.2 })).await, 400);
    assert_error(
        &patch(&t, &id, json!({ "importance": 0.2, "reason": "  " })).await,
        400,
    );
    assert_eq!(get_memory(&t, &id).await.body["version"], 1);
    t.stop().await;
}

#[tokio::test]
async fn patch_with_an_if_version_that_is_not_a_positive_integer_is_400() {
    let t = spawn_app().await;
    let id = t.remember("patch if_version validation").await;
    for v in [json!(0), json!(-1), json!("1"), json!(1.5), json!(true)] {
        let r = patch(
            &t,
            &id,
            json!({ "importance": 0.2, "reason": "r", "if_version": v }),
        )
        .await;
        assert_error(&r, 400);
    }
    assert_eq!(get_memory(&t, &id).await.body["version"], 1);
    t.stop().await;
}

#[tokio::test]
async fn patch_with_invalid_fields_is_400() {
    let t = spawn_app().await;
    let id = t.remember("patch field validation").await;
    for body in [
        json!({ "importance": 1.5, "reason": "r" }),
        json!({ "importance": "high", "reason": "r" }),
        json!({ "content": "", "reason": "r" }),
        json!({ "content": 5, "reason": "r" }),
        json!({ "type": "nonsense", "reason": "r" }),
        json!({ "pinned": "yes", "reason": "r" }),
        json!({ "tags": 5, "reason": "r" }),
    ] {
        assert_error(&patch(&t, &id, body).await, 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn patch_of_an_unknown_id_is_404() {
    let t = spawn_app().await;
    let r = patch(&t, UNKNOWN_ID, json!({ "importance": 0.2, "reason": "r" })).await;
    assert_error(&r, 404);
    assert_eq!(r.body["status"], "not_found");
    t.stop().await;
}

#[tokio::test]
async fn patch_of_a_deleted_memory_is_409_deleted() {
    let t = spawn_app().await;
    let id = t.remember("patched after deletion").await;
    assert_eq!(delete_q(&t, &id, "reason=x").await.status, 200);
    let r = patch(&t, &id, json!({ "importance": 0.2, "reason": "r" })).await;
    assert_refused(&r, 409, "deleted", &id, Some(2));
    t.stop().await;
}

#[tokio::test]
async fn patch_with_stale_if_version_is_409_version_conflict() {
    let t = spawn_app().await;
    let id = t.remember("optimistic concurrency subject").await;
    let r = patch(
        &t,
        &id,
        json!({ "importance": 0.5, "reason": "r", "if_version": 1 }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["newVersion"], 2);
    let r = patch(
        &t,
        &id,
        json!({ "importance": 0.6, "reason": "r", "if_version": 1 }),
    )
    .await;
    assert_refused(&r, 409, "version_conflict", &id, Some(2));
    assert_eq!(get_memory(&t, &id).await.body["importance"], 0.5);
    t.stop().await;
}

#[tokio::test]
async fn patch_to_the_content_of_another_memory_is_409_duplicate_content_hash() {
    let t = spawn_app().await;
    let a = t.remember("Alpha content here").await;
    let b = t.remember("beta content here").await;
    let r = patch(
        &t,
        &b,
        json!({ "content": "alpha   CONTENT here.", "reason": "r" }),
    )
    .await;
    assert_refused(&r, 409, "duplicate_content_hash", &b, Some(1));
    assert_eq!(r.body["duplicateMemoryId"], a.as_str());
    assert_eq!(
        get_memory(&t, &b).await.body["content"],
        "beta content here"
    );
    t.stop().await;
}

#[tokio::test]
async fn patch_without_changes_is_200_no_changes() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({ "content": "steady state", "importance": 0.4, "tags": "a" }),
    )
    .await;
    let r = patch(
        &t,
        &id,
        json!({ "content": "steady state", "importance": 0.4, "tags": ["A"], "reason": "noop" }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "no_changes");
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["currentVersion"], 1);
    assert_eq!(get_memory(&t, &id).await.body["version"], 1);
    assert_eq!(history(&t, &id).await.len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn patch_updates_the_fields_and_bumps_the_version() {
    let t = spawn_app().await;
    let id = t.remember("original patch target").await;
    let r = patch(
        &t,
        &id,
        json!({
            "content": "rewritten patch target",
            "type": "decision",
            "importance": 0.25,
            "pinned": true,
            "tags": ["New", "tags"],
            "reason": "rewrite",
            "if_version": 1,
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["status"], "updated");
    assert_eq!(r.body["currentVersion"], 1);
    assert_eq!(r.body["newVersion"], 2);
    assert_eq!(r.body["contentChanged"], true);
    assert!(
        r.body["embedded"].is_boolean(),
        "SPEC §5: PATCH success carries `embedded`: {:?}",
        r.body
    );

    let g = get_memory(&t, &id).await.body;
    assert_eq!(g["content"], "rewritten patch target");
    assert_eq!(g["type"], "decision");
    assert_eq!(g["importance"], 0.25);
    assert_eq!(g["pinned"], 1);
    assert_eq!(g["tags"], "new,tags");
    assert_eq!(g["version"], 2);

    // A metadata-only change reports contentChanged false.
    let r = patch(&t, &id, json!({ "importance": 0.3, "reason": "tune" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["contentChanged"], false);
    assert_eq!(r.body["newVersion"], 3);
    t.stop().await;
}

#[tokio::test]
async fn patch_with_null_tags_clears_the_tags() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({ "content": "tagged then cleared", "tags": "a,b" }),
    )
    .await;
    let r = patch(&t, &id, json!({ "tags": null, "reason": "clear" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "updated");
    assert_eq!(get_memory(&t, &id).await.body["tags"], Value::Null);
    t.stop().await;
}

#[tokio::test]
async fn patch_content_change_is_visible_in_keyword_recall() {
    let t = spawn_app().await;
    let id = t.remember("marmots burrow in alpine meadows").await;
    assert_eq!(recall_ids(&t, "marmots").await, vec![id.clone()]);
    let r = patch(
        &t,
        &id,
        json!({ "content": "capybaras swim in tropical rivers", "reason": "correction" }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(recall_ids(&t, "marmots").await.is_empty());
    assert_eq!(recall_ids(&t, "capybaras").await, vec![id.clone()]);
    let r = recall(&t, json!({ "query": "capybaras" })).await;
    assert_eq!(
        r.body["results"][0]["content"],
        "capybaras swim in tropical rivers"
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// DELETE
// ---------------------------------------------------------------------------

#[tokio::test]
async fn delete_takes_reason_and_if_version_from_the_query_string_without_a_body() {
    let t = spawn_app().await;
    let id = t.remember("deleted the SDK way").await;
    let r = delete_q(&t, &id, "if_version=5&reason=sdk").await;
    assert_refused(&r, 409, "version_conflict", &id, Some(1));
    let r = delete_q(&t, &id, "if_version=1&reason=sdk%20cleanup").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["status"], "deleted");
    assert_eq!(r.body["currentVersion"], 1);
    assert_eq!(r.body["newVersion"], 2);
    let h = history(&t, &id).await;
    assert_eq!(h.last().unwrap()["event"], "deleted");
    assert_eq!(h.last().unwrap()["reason"], "sdk cleanup");
    t.stop().await;
}

#[tokio::test]
async fn delete_with_a_bad_if_version_in_the_query_is_400() {
    let t = spawn_app().await;
    let id = t.remember("bad query version").await;
    for q in [
        "if_version=abc",
        "if_version=0",
        "if_version=-2",
        "force=maybe",
    ] {
        assert_error(&delete_q(&t, &id, q).await, 400);
    }
    assert_eq!(get_memory(&t, &id).await.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn delete_takes_reason_force_and_if_version_from_a_json_body() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({ "content": "deleted by JSON body", "pinned": true }),
    )
    .await;
    let path = format!("/api/memory/{id}");
    let r = t
        .send(
            "DELETE",
            &path,
            json!({ "reason": "json", "if_version": 3, "force": true }),
        )
        .await;
    assert_refused(&r, 409, "version_conflict", &id, Some(1));
    let r = t
        .send(
            "DELETE",
            &path,
            json!({ "reason": "json", "if_version": 1 }),
        )
        .await;
    assert_refused(&r, 409, "pinned_requires_force", &id, Some(1));
    let r = t
        .send(
            "DELETE",
            &path,
            json!({ "reason": "json body", "if_version": 1, "force": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "deleted");
    assert_eq!(r.body["newVersion"], 2);
    let h = history(&t, &id).await;
    assert_eq!(h.last().unwrap()["reason"], "json body");
    let r = t
        .send("DELETE", &path, json!({ "reason": "x", "if_version": "1" }))
        .await;
    assert_error(&r, 400);
    t.stop().await;
}

#[tokio::test]
async fn delete_of_an_unknown_id_is_404() {
    let t = spawn_app().await;
    let r = delete_q(&t, UNKNOWN_ID, "reason=x").await;
    assert_error(&r, 404);
    assert_eq!(r.body["status"], "not_found");
    t.stop().await;
}

#[tokio::test]
async fn delete_twice_is_409_already_deleted() {
    let t = spawn_app().await;
    let id = t.remember("deleted twice").await;
    assert_eq!(delete_q(&t, &id, "reason=once").await.status, 200);
    let r = delete_q(&t, &id, "reason=twice").await;
    assert_refused(&r, 409, "already_deleted", &id, Some(2));
    t.stop().await;
}

#[tokio::test]
async fn delete_of_a_pinned_memory_without_force_is_409_pinned_requires_force() {
    let t = spawn_app().await;
    let id = remember_id(&t, json!({ "content": "critical: pinned forever" })).await;
    let r = delete_q(&t, &id, "reason=try").await;
    assert_refused(&r, 409, "pinned_requires_force", &id, Some(1));
    let r = delete_q(&t, &id, "reason=try&force=false").await;
    assert_refused(&r, 409, "pinned_requires_force", &id, Some(1));
    assert_eq!(get_memory(&t, &id).await.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn force_delete_of_a_pinned_memory_succeeds() {
    let t = spawn_app().await;
    let id = remember_id(&t, json!({ "content": "critical: pinned but removable" })).await;
    let r = delete_q(&t, &id, "reason=operator%20override&force=true").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "deleted");
    assert_eq!(get_memory(&t, &id).await.status, 404);
    t.stop().await;
}

#[tokio::test]
async fn an_agent_forcing_the_delete_of_a_pinned_memory_is_403_autonomous_force_denied() {
    let t = spawn_app().await;
    let id = remember_id(&t, json!({ "content": "critical: guarded from agents" })).await;
    for actor_type in ["agent", "pipeline"] {
        let r = request(
            &t,
            "DELETE",
            &format!("/api/memory/{id}?reason=agent&force=true"),
            None,
            None,
            &[("x-signet-actor-type", actor_type)],
        )
        .await;
        assert_refused(&r, 403, "autonomous_force_denied", &id, Some(1));
    }
    assert_eq!(get_memory(&t, &id).await.status, 200);
    // An agent may still delete an unpinned memory.
    let plain = t.remember("agents may delete this").await;
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{plain}?reason=agent"),
        None,
        None,
        &[("x-signet-actor-type", "agent")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn deleted_memories_never_appear_in_recall_search_or_list() {
    let t = spawn_app().await;
    let ghost = t.remember("ghost ferret hides in the attic").await;
    let live = t.remember("visible ferret plays in the garden").await;
    assert_eq!(recall_ids(&t, "ferret").await.len(), 2);
    assert_eq!(delete_q(&t, &ghost, "reason=x").await.status, 200);

    assert_eq!(recall_ids(&t, "ferret").await, vec![live.clone()]);
    assert!(recall_ids(&t, "ghost attic").await.is_empty());
    let r = get_query(&t, "/api/memory/search", &[("q", "ferret")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids_of(&r.body["results"]), vec![live.clone()]);
    let r = get_query(&t, "/memory/search", &[("q", "ferret")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids_of(&r.body["results"]), vec![live.clone()]);
    let r = t.get("/api/memories").await;
    assert_eq!(ids_of(&r.body["memories"]), vec![live.clone()]);
    assert_eq!(r.body["stats"]["total"], 1);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// recover
// ---------------------------------------------------------------------------

#[tokio::test]
async fn recover_without_a_reason_is_400() {
    let t = spawn_app().await;
    let id = t.remember("recover needs a reason").await;
    assert_eq!(delete_q(&t, &id, "reason=x").await.status, 200);
    assert_error(&recover(&t, &id, json!({})).await, 400);
    assert_error(&recover(&t, &id, json!({ "reason": "" })).await, 400);
    assert_error(
        &t.raw("POST", &format!("/api/memory/{id}/recover"), None)
            .await,
        400,
    );
    assert_eq!(get_memory(&t, &id).await.status, 404);
    t.stop().await;
}

#[tokio::test]
async fn recover_of_an_unknown_id_is_404() {
    let t = spawn_app().await;
    let r = recover(&t, UNKNOWN_ID, json!({ "reason": "r" })).await;
    assert_error(&r, 404);
    t.stop().await;
}

#[tokio::test]
async fn recover_of_a_live_memory_is_409_not_deleted() {
    let t = spawn_app().await;
    let id = t.remember("alive and well").await;
    let r = recover(&t, &id, json!({ "reason": "r" })).await;
    assert_refused(&r, 409, "not_deleted", &id, Some(1));
    t.stop().await;
}

#[tokio::test]
async fn recover_with_a_stale_if_version_is_409_version_conflict() {
    let t = spawn_app().await;
    let id = t.remember("recover version check").await;
    assert_eq!(delete_q(&t, &id, "reason=x").await.status, 200);
    let r = recover(&t, &id, json!({ "reason": "r", "if_version": 1 })).await;
    assert_refused(&r, 409, "version_conflict", &id, Some(2));
    assert_error(
        &recover(&t, &id, json!({ "reason": "r", "if_version": 0 })).await,
        400,
    );
    assert_error(
        &recover(&t, &id, json!({ "reason": "r", "if_version": "2" })).await,
        400,
    );
    t.stop().await;
}

#[tokio::test]
async fn recover_restores_a_deleted_memory_and_makes_it_searchable_again() {
    let t = spawn_app().await;
    let id = t.remember("phoenix rises from the ashes").await;
    assert_eq!(delete_q(&t, &id, "reason=x").await.status, 200);
    assert!(recall_ids(&t, "phoenix").await.is_empty());

    let r = recover(&t, &id, json!({ "reason": "mistake", "if_version": 2 })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["status"], "recovered");
    assert_eq!(r.body["currentVersion"], 2);
    assert_eq!(r.body["newVersion"], 3);
    assert_eq!(
        r.body["retentionDays"], 30,
        "SPEC §5: recover answers retentionDays: 30: {:?}",
        r.body
    );

    let g = get_memory(&t, &id).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["is_deleted"], 0);
    assert_eq!(g.body["deleted_at"], Value::Null);
    assert_eq!(g.body["version"], 3);
    assert_eq!(recall_ids(&t, "phoenix").await, vec![id.clone()]);
    assert_eq!(t.get("/api/memories").await.body["stats"]["total"], 1);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// batch forget
// ---------------------------------------------------------------------------

#[tokio::test]
async fn batch_forget_previews_by_default_with_a_confirm_token() {
    let t = spawn_app().await;
    let mut otters = Vec::new();
    for i in 0..3 {
        otters.push(t.remember(&format!("otter sighting number {i}")).await);
    }
    let badger = t.remember("badger in the hedge").await;
    let r = t
        .post("/api/memory/forget", json!({ "query": "otter" }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    let b = &r.body;
    assert_eq!(b["mode"], "preview");
    assert_eq!(b["count"], 3);
    assert_eq!(b["requiresConfirm"], false);
    let ids = ids_of(&b["candidates"]);
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        otters.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(!ids.contains(&badger));
    assert_eq!(b["confirmToken"], expected_token(&ids));
    for c in b["candidates"].as_array().unwrap() {
        assert!(c["score"].is_number(), "{c:?}");
        assert_eq!(c["pinned"], false);
        assert_eq!(c["version"], 1);
    }
    // A preview deletes nothing.
    for id in &otters {
        assert_eq!(get_memory(&t, id).await.status, 200);
    }
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "query": "otter", "mode": "preview" }),
        )
        .await;
    assert_eq!(r.body["mode"], "preview");
    assert_eq!(r.body["count"], 3);
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_with_if_version_is_400() {
    let t = spawn_app().await;
    let id = t.remember("batch forget version").await;
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "ids": [id], "if_version": 1 }),
        )
        .await;
    assert_error(&r, 400);
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_without_a_selector_is_400() {
    let t = spawn_app().await;
    t.remember("nothing selected").await;
    assert_error(&t.post("/api/memory/forget", json!({})).await, 400);
    assert_error(
        &t.post(
            "/api/memory/forget",
            json!({ "mode": "execute", "reason": "everything" }),
        )
        .await,
        400,
    );
    assert_error(
        &t.post("/api/memory/forget", json!({ "query": "   " }))
            .await,
        400,
    );
    assert_eq!(t.get("/api/memories").await.body["stats"]["total"], 1);
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_with_a_bad_mode_or_limit_is_400() {
    let t = spawn_app().await;
    let id = t.remember("batch forget validation").await;
    for body in [
        json!({ "ids": [id], "mode": "nuke" }),
        json!({ "ids": [id], "limit": 0 }),
        json!({ "ids": [id], "limit": 201 }),
        json!({ "ids": "not-an-array" }),
    ] {
        assert_error(&t.post("/api/memory/forget", body).await, 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_execute_without_a_reason_is_400() {
    let t = spawn_app().await;
    let id = t.remember("execute needs a reason").await;
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "mode": "execute", "ids": [id] }),
        )
        .await;
    assert_error(&r, 400);
    assert_eq!(get_memory(&t, &id).await.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_execute_deletes_and_reports_each_result() {
    let t = spawn_app().await;
    let a = t.remember("execute target alpha").await;
    let b = t.remember("execute target bravo").await;
    let pinned = remember_id(&t, json!({ "content": "critical: execute target pinned" })).await;
    let keep = t.remember("bystander stays").await;
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "mode": "execute", "ids": [a, b, pinned], "reason": "spring cleaning" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["mode"], "execute");
    assert_eq!(r.body["requested"], 3);
    assert_eq!(r.body["deleted"], 2);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for res in results {
        let id = res["id"].as_str().unwrap();
        if id == pinned {
            assert_eq!(res["status"], "pinned_requires_force", "{res:?}");
        } else {
            assert_eq!(res["status"], "deleted", "{res:?}");
            assert_eq!(res["currentVersion"], 1);
            assert_eq!(res["newVersion"], 2);
        }
    }
    assert_eq!(get_memory(&t, &a).await.status, 404);
    assert_eq!(get_memory(&t, &b).await.status, 404);
    assert_eq!(get_memory(&t, &pinned).await.status, 200);
    assert_eq!(get_memory(&t, &keep).await.status, 200);
    let h = history(&t, &a).await;
    assert_eq!(h.last().unwrap()["event"], "deleted");
    assert_eq!(h.last().unwrap()["reason"], "spring cleaning");
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_execute_over_25_candidates_needs_the_confirm_token() {
    let t = spawn_app().await;
    for i in 0..30 {
        remember_id(
            &t,
            json!({ "content": format!("bulk memory number {i}"), "tags": "bulk" }),
        )
        .await;
    }
    let preview = t
        .post("/api/memory/forget", json!({ "tags": "bulk", "limit": 30 }))
        .await;
    assert_eq!(preview.status, 200, "{:?}", preview.body);
    assert_eq!(preview.body["count"], 30);
    assert_eq!(preview.body["requiresConfirm"], true);
    let token = preview.body["confirmToken"].as_str().unwrap().to_string();
    assert_eq!(token, expected_token(&ids_of(&preview.body["candidates"])));

    let exec = json!({ "tags": "bulk", "limit": 30, "mode": "execute", "reason": "bulk purge" });
    assert_error(&t.post("/api/memory/forget", exec.clone()).await, 400);
    let mut wrong = exec.clone();
    wrong["confirm_token"] = json!("0".repeat(32));
    assert_error(&t.post("/api/memory/forget", wrong).await, 400);
    assert_eq!(t.get("/api/memories").await.body["stats"]["total"], 30);

    let mut right = exec.clone();
    right["confirm_token"] = json!(token);
    let r = t.post("/api/memory/forget", right).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["mode"], "execute");
    assert_eq!(r.body["requested"], 30);
    assert_eq!(r.body["deleted"], 30);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 30);
    assert_eq!(t.get("/api/memories").await.body["stats"]["total"], 0);
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_selects_by_ids_type_tags_who_and_query() {
    let t = spawn_app().await;
    let a = remember_id(
        &t,
        json!({ "content": "selector walrus one", "type": "decision", "tags": "red", "who": "carol" }),
    )
    .await;
    let b = remember_id(
        &t,
        json!({ "content": "selector penguin two", "type": "decision", "tags": "blue", "who": "dave" }),
    )
    .await;
    let c = remember_id(
        &t,
        json!({ "content": "selector walrus three", "type": "fact", "tags": "red,blue", "who": "dave" }),
    )
    .await;
    let d = remember_id(
        &t,
        json!({ "content": "selector seal four", "type": "fact", "who": "carol" }),
    )
    .await;
    let cases = [
        (json!({ "ids": [a, d] }), set(&[&a, &d])),
        (json!({ "type": "decision" }), set(&[&a, &b])),
        (json!({ "tags": "red" }), set(&[&a, &c])),
        (json!({ "tags": ["red", "blue"] }), set(&[&c])),
        (json!({ "who": "carol" }), set(&[&a, &d])),
        (json!({ "query": "walrus" }), set(&[&a, &c])),
        (json!({ "query": "walrus", "type": "fact" }), set(&[&c])),
        (json!({ "ids": [a, b, c], "who": "dave" }), set(&[&b, &c])),
    ];
    for (body, want) in cases {
        let r = t.post("/api/memory/forget", body.clone()).await;
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
        assert_eq!(id_set(&r.body["candidates"]), want, "selector {body}");
        assert_eq!(r.body["count"], want.len(), "selector {body}");
    }
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_limit_defaults_to_20() {
    let t = spawn_app().await;
    for i in 0..22 {
        remember_id(
            &t,
            json!({ "content": format!("episodic entry {i}"), "type": "episodic" }),
        )
        .await;
    }
    let r = t
        .post("/api/memory/forget", json!({ "type": "episodic" }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["count"], 20);
    assert_eq!(r.body["candidates"].as_array().unwrap().len(), 20);
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "type": "episodic", "limit": 22 }),
        )
        .await;
    assert_eq!(r.body["count"], 22);
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "type": "episodic", "limit": 5 }),
        )
        .await;
    assert_eq!(r.body["count"], 5);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// batch modify
// ---------------------------------------------------------------------------

#[tokio::test]
async fn batch_modify_applies_valid_patches_and_reports_invalid_ones() {
    let t = spawn_app().await;
    let a = t.remember("batch modify alpha").await;
    let b = t.remember("batch modify bravo").await;
    let c = t.remember("batch modify charlie").await;
    let r = t
        .post(
            "/api/memory/modify",
            json!({
                "patches": [
                    { "id": a, "content": "batch modify alpha edited" },
                    { "content": "no id at all" },
                    { "id": b, "importance": 5 },
                    { "id": c, "tags": ["Batch"], "pinned": true },
                    { "id": UNKNOWN_ID, "importance": 0.1 },
                ],
                "reason": "bulk edit",
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["total"], 5);
    assert_eq!(r.body["updated"], 2);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    assert_eq!(res[0]["id"], a.as_str());
    assert_eq!(res[0]["status"], "updated");
    assert_eq!(res[0]["newVersion"], 2);
    assert_eq!(res[0]["contentChanged"], true);
    assert_eq!(res[1]["status"], "invalid_request");
    assert!(res[1]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(res[2]["status"], "invalid_request");
    assert_eq!(res[2]["id"], b.as_str());
    assert!(res[2]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(res[3]["id"], c.as_str());
    assert_eq!(res[3]["status"], "updated");
    assert_eq!(res[4]["status"], "not_found");

    assert_eq!(
        get_memory(&t, &a).await.body["content"],
        "batch modify alpha edited"
    );
    assert_eq!(get_memory(&t, &b).await.body["importance"], 0.8);
    assert_eq!(get_memory(&t, &b).await.body["version"], 1);
    let gc = get_memory(&t, &c).await.body;
    assert_eq!(gc["tags"], "batch");
    assert_eq!(gc["pinned"], 1);
    let h = history(&t, &a).await;
    assert_eq!(h.last().unwrap()["reason"], "bulk edit");
    t.stop().await;
}

#[tokio::test]
async fn batch_modify_items_without_any_reason_are_invalid() {
    let t = spawn_app().await;
    let a = t.remember("batch reasons").await;
    let b = t.remember("batch reasons two").await;
    let r = t
        .post(
            "/api/memory/modify",
            json!({ "patches": [
                { "id": a, "importance": 0.2 },
                { "id": b, "importance": 0.2, "reason": "own reason" },
            ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["updated"], 1);
    assert_eq!(r.body["results"][0]["status"], "invalid_request");
    assert_eq!(r.body["results"][1]["status"], "updated");
    t.stop().await;
}

#[tokio::test]
async fn batch_modify_with_more_than_200_patches_is_400() {
    let t = spawn_app().await;
    let id = t.remember("too many patches").await;
    let patches: Vec<Value> = (0..201)
        .map(|_| json!({ "id": id, "importance": 0.5 }))
        .collect();
    let r = t
        .post(
            "/api/memory/modify",
            json!({ "patches": patches, "reason": "r" }),
        )
        .await;
    assert_error(&r, 400);
    assert_eq!(get_memory(&t, &id).await.body["version"], 1);
    t.stop().await;
}

#[tokio::test]
async fn batch_modify_with_no_patches_is_400() {
    let t = spawn_app().await;
    assert_error(
        &t.post(
            "/api/memory/modify",
            json!({ "patches": [], "reason": "r" }),
        )
        .await,
        400,
    );
    assert_error(
        &t.post("/api/memory/modify", json!({ "reason": "r" })).await,
        400,
    );
    assert_error(
        &t.post(
            "/api/memory/modify",
            json!({ "patches": "nope", "reason": "r" }),
        )
        .await,
        400,
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// recall and search
// ---------------------------------------------------------------------------

#[tokio::test]
async fn recall_returns_keyword_results_with_every_field() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({
            "content": "The heron fishes at dawn",
            "tags": "birds",
            "who": "watcher",
            "project": "wetlands",
            "importance": 0.6,
        }),
    )
    .await;
    t.remember("unrelated sentence about trains").await;
    let r = recall(&t, json!({ "query": "heron" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["query"], "heron");
    assert_eq!(r.body["method"], "keyword");
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let x = &results[0];
    assert_eq!(x["id"], id.as_str());
    assert_eq!(x["content"], "The heron fishes at dawn");
    assert_eq!(x["score"], 1.0);
    assert_eq!(x["source"], "keyword");
    assert_eq!(x["type"], "fact");
    assert_eq!(x["tags"], "birds");
    assert_eq!(x["pinned"], false);
    assert!(x["pinned"].is_boolean());
    assert_eq!(x["importance"], 0.6);
    assert_eq!(x["who"], "watcher");
    assert_eq!(x["project"], "wetlands");
    assert!(x["created_at"].is_string());
    t.stop().await;
}

#[tokio::test]
async fn recall_without_a_query_is_400() {
    let t = spawn_app().await;
    t.remember("something to find").await;
    assert_error(&recall(&t, json!({})).await, 400);
    assert_error(&recall(&t, json!({ "query": "" })).await, 400);
    assert_error(&recall(&t, json!({ "query": "   " })).await, 400);
    assert_error(&recall(&t, json!({ "query": 5 })).await, 400);
    t.stop().await;
}

#[tokio::test]
async fn recall_filters_drop_rows_even_when_they_would_rank_first() {
    let t = spawn_app().await;
    let strong = remember_id(
        &t,
        json!({
            "content": "quokka quokka quokka",
            "type": "fact",
            "tags": "other",
            "who": "alice",
            "pinned": false,
            "importance": 0.5,
            "project": "p2",
        }),
    )
    .await;
    let weak = remember_id(
        &t,
        json!({
            "content": "a quokka lives on an island near the coast of western australia with many friends",
            "type": "decision",
            "tags": ["keep", "extra"],
            "who": "bob",
            "pinned": true,
            "importance": 0.95,
            "project": "p1",
        }),
    )
    .await;
    let r = recall(&t, json!({ "query": "quokka", "limit": 1 })).await;
    assert_eq!(
        ids_of(&r.body["results"]),
        vec![strong.clone()],
        "sanity: strong ranks first"
    );

    for filter in [
        json!({ "type": "decision" }),
        json!({ "tags": "keep" }),
        json!({ "tags": ["keep", "extra"] }),
        json!({ "who": "bob" }),
        json!({ "pinned": true }),
        json!({ "importance_min": 0.9 }),
        json!({ "project": "p1" }),
    ] {
        let mut body = filter.clone();
        body["query"] = json!("quokka");
        body["limit"] = json!(1);
        let r = recall(&t, body).await;
        assert_eq!(r.status, 200, "{filter}: {:?}", r.body);
        assert_eq!(
            ids_of(&r.body["results"]),
            vec![weak.clone()],
            "filter {filter}"
        );
    }
    let r = recall(&t, json!({ "query": "quokka", "pinned": false })).await;
    assert_eq!(ids_of(&r.body["results"]), vec![strong.clone()]);
    let r = recall(&t, json!({ "query": "quokka", "who": "nobody" })).await;
    assert!(r.body["results"].as_array().unwrap().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn recall_filters_apply_inside_the_search_not_after_the_candidate_cut() {
    let t = spawn_app().await;
    for i in 0..25 {
        t.remember(&format!("kiwi kiwi kiwi {i}")).await;
    }
    let rare = remember_id(
        &t,
        json!({
            "content": "one kiwi among a great many other words that dilute the keyword score considerably",
            "type": "decision",
        }),
    )
    .await;
    let r = recall(
        &t,
        json!({ "query": "kiwi", "type": "decision", "limit": 1 }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids_of(&r.body["results"]), vec![rare]);
    t.stop().await;
}

#[tokio::test]
async fn recall_respects_the_limit() {
    let t = spawn_app().await;
    for i in 0..12 {
        t.remember(&format!("wombat burrow report {i}")).await;
    }
    let r = recall(&t, json!({ "query": "wombat", "limit": 3 })).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 3);
    let r = recall(&t, json!({ "query": "wombat" })).await;
    assert_eq!(
        r.body["results"].as_array().unwrap().len(),
        10,
        "default limit 10"
    );
    let r = recall(&t, json!({ "query": "wombat", "limit": 50 })).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 12);
    t.stop().await;
}

#[tokio::test]
async fn recall_scores_are_normalised_with_the_best_at_one_and_sorted() {
    let t = spawn_app().await;
    t.remember("llama llama llama on the ridge").await;
    t.remember(
        "a lone llama grazes among sheep goats cows and several other animals in the valley",
    )
    .await;
    t.remember("llama trek booked for the summer holidays with the family")
        .await;
    let r = recall(&t, json!({ "query": "llama" })).await;
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let scores: Vec<f64> = results
        .iter()
        .map(|x| x["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores[0], 1.0, "{scores:?}");
    for w in scores.windows(2) {
        assert!(w[0] >= w[1], "sorted best first: {scores:?}");
    }
    for s in &scores {
        assert!(*s > 0.0 && *s <= 1.0, "{scores:?}");
        assert_eq!((s * 100.0).round() / 100.0, *s, "rounded to 2 decimals");
    }
    t.stop().await;
}

#[tokio::test]
async fn recall_truncates_content_over_500_characters() {
    let t = spawn_app().await;
    let long = format!("needle {}", "lorem ipsum ".repeat(60));
    let id = t.remember(&long).await;
    let r = recall(&t, json!({ "query": "needle" })).await;
    let x = &r.body["results"][0];
    assert_eq!(x["id"], id.as_str());
    let content = x["content"].as_str().unwrap();
    assert!(content.ends_with(" [truncated]"), "{content}");
    assert_eq!(content.chars().count(), 500 + " [truncated]".len());
    assert!(long
        .trim()
        .starts_with(content.trim_end_matches(" [truncated]")));
    // The stored record keeps the full text.
    assert_eq!(get_memory(&t, &id).await.body["content"], long.trim());
    t.stop().await;
}

#[tokio::test]
async fn recall_with_fts_syntax_characters_never_fails() {
    let t = spawn_app().await;
    let id = t.remember("needle in the haystack").await;
    for q in [
        "\"needle",
        "needle\"",
        "\"needle\"",
        "needle*",
        "*",
        "(needle",
        "needle)",
        "()",
        "NEAR(needle haystack)",
        "NEAR(",
        "content:needle",
        "col:needle",
        "-needle",
        "needle -haystack",
        "AND",
        "OR",
        "NOT",
        "AND OR NOT",
        "needle AND",
        "NOT needle",
        "needle NOT",
        "needle AND OR haystack",
        "^needle",
        "{needle haystack}",
        "needle + haystack",
        "'needle'",
        ":",
        "\"\"",
        "needle's",
        "a\"b\"c",
        "needle \u{0}",
        "ναι 日本語",
    ] {
        let r = recall(&t, json!({ "query": q })).await;
        assert_eq!(r.status, 200, "query {q:?}: {:?}", r.body);
        assert!(r.body["results"].is_array(), "query {q:?}: {:?}", r.body);
        let r = get_query(&t, "/api/memory/search", &[("q", q)]).await;
        assert_eq!(r.status, 200, "search {q:?}: {:?}", r.body);
    }
    for q in [
        "\"needle",
        "needle*",
        "(needle",
        "NOT needle",
        "needle AND",
        "-needle",
    ] {
        assert_eq!(recall_ids(&t, q).await, vec![id.clone()], "query {q:?}");
    }
    t.stop().await;
}

#[tokio::test]
async fn recall_joins_plain_terms_with_or_and_keeps_written_operators() {
    let t = spawn_app().await;
    let apple = t.remember("apple pie recipe").await;
    let banana = t.remember("banana bread recipe").await;
    let cherry = t.remember("cherry tart recipe").await;
    let got: BTreeSet<String> = recall_ids(&t, "apple OR banana")
        .await
        .into_iter()
        .collect();
    assert_eq!(got, set(&[&apple, &banana]));
    let got: BTreeSet<String> = recall_ids(&t, "apple banana").await.into_iter().collect();
    assert_eq!(got, set(&[&apple, &banana]), "plain terms: any may match");
    assert_eq!(recall_ids(&t, "apple AND pie").await, vec![apple.clone()]);
    let got: BTreeSet<String> = recall_ids(&t, "recipe NOT cherry")
        .await
        .into_iter()
        .collect();
    assert_eq!(got, set(&[&apple, &banana]));
    assert_eq!(recall_ids(&t, "recipe").await.len(), 3);
    assert!(!recall_ids(&t, "apple OR banana").await.contains(&cherry));
    t.stop().await;
}

#[tokio::test]
async fn get_api_memory_search_has_the_recall_shape_and_is_not_a_memory_lookup() {
    let t = spawn_app().await;
    let id = remember_id(
        &t,
        json!({ "content": "searchable gazelle", "type": "fact" }),
    )
    .await;
    t.remember("another gazelle herd on the plains, decided to move")
        .await;
    let r = get_query(
        &t,
        "/api/memory/search",
        &[("q", "gazelle"), ("limit", "1")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["query"], "gazelle");
    assert_eq!(r.body["method"], "keyword");
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    for k in [
        "id",
        "content",
        "score",
        "source",
        "type",
        "tags",
        "pinned",
        "importance",
        "who",
        "project",
        "created_at",
    ] {
        assert!(results[0].get(k).is_some(), "missing {k}: {:?}", results[0]);
    }
    let r = get_query(
        &t,
        "/api/memory/search",
        &[("q", "gazelle"), ("type", "fact")],
    )
    .await;
    assert_eq!(ids_of(&r.body["results"]), vec![id]);
    // Without a query it is a 400 from search, not a 404 for id "search".
    let r = t.get("/api/memory/search").await;
    assert_error(&r, 400);
    let r = get_query(
        &t,
        "/api/memory/search",
        &[("q", "gazelle"), ("limit", "x")],
    )
    .await;
    assert_error(&r, 400);
    t.stop().await;
}

#[tokio::test]
async fn legacy_memory_search_has_the_recall_shape() {
    let t = spawn_app().await;
    let id = t.remember("legacy endpoint finds the ibex").await;
    let r = get_query(&t, "/memory/search", &[("q", "ibex")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    assert_eq!(r.body["method"], "keyword");
    assert_eq!(r.body["query"], "ibex");
    assert_eq!(ids_of(&r.body["results"]), vec![id]);
    assert_eq!(r.body["results"][0]["source"], "keyword");
    t.stop().await;
}

#[tokio::test]
async fn legacy_search_distinct_who_lists_the_writers_of_live_memories() {
    let t = spawn_app().await;
    remember_id(&t, json!({ "content": "by alice", "who": "alice" })).await;
    remember_id(&t, json!({ "content": "by alice again", "who": "alice" })).await;
    remember_id(&t, json!({ "content": "by bob", "who": "bob" })).await;
    t.remember("by the default writer").await;
    let gone = remember_id(&t, json!({ "content": "by zed", "who": "zed" })).await;
    assert_eq!(delete_q(&t, &gone, "reason=x").await.status, 200);
    let r = t.get("/memory/search?distinct=who").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(is_json(&r));
    let mut values: Vec<String> = r.body["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    values.sort();
    assert_eq!(values, ["alice", "bob", "daemon"]);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// routing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_route_is_404_json() {
    let t = spawn_app().await;
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/api/nothing/here"),
        ("POST", "/api/memory/remember/extra"),
        ("GET", "/api/memory/a/b/c"),
    ] {
        let r = t.raw(method, path, None).await;
        assert_error(&r, 404);
    }
    t.stop().await;
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405_json() {
    let t = spawn_app().await;
    for (method, path) in [
        ("PUT", "/health".to_string()),
        ("POST", "/health".to_string()),
        ("DELETE", "/api/status".to_string()),
        ("POST", "/api/memories".to_string()),
        ("PUT", format!("/api/memory/{UNKNOWN_ID}")),
        ("GET", format!("/api/memory/{UNKNOWN_ID}/recover")),
        ("DELETE", format!("/api/memory/{UNKNOWN_ID}/history")),
        ("POST", "/memory/search".to_string()),
    ] {
        let r = t.raw(method, &path, None).await;
        assert_error(&r, 405);
    }
    t.stop().await;
}

#[tokio::test]
async fn a_wrong_method_on_an_action_path_is_405_not_a_lookup_of_that_id() {
    let t = spawn_app().await;
    let mut wrong = Vec::new();
    for (method, path) in [
        ("DELETE", "/api/memory/remember"),
        ("GET", "/api/memory/remember"),
        ("GET", "/api/memory/recall"),
        ("PATCH", "/api/memory/forget"),
        ("GET", "/api/memory/modify"),
        ("GET", "/api/memory/save"),
    ] {
        let r = t.raw(method, path, None).await;
        assert!(is_json(&r), "{method} {path}: not JSON");
        assert!(r.body["error"].is_string(), "{method} {path}: {:?}", r.body);
        if r.status != 405 {
            wrong.push(format!("{method} {path} -> {} {}", r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "expected 405 for:\n{}", wrong.join("\n"));
    t.stop().await;
}

// ---------------------------------------------------------------------------
// request headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_request_id_is_echoed_when_sent_and_generated_when_absent() {
    let t = spawn_app().await;
    let r = request(
        &t,
        "GET",
        "/health",
        None,
        None,
        &[("x-signet-request-id", "req-abc-123")],
    )
    .await;
    assert_eq!(r.headers["x-signet-request-id"], "req-abc-123");
    // Also on errors.
    let r = request(
        &t,
        "GET",
        "/nope",
        None,
        None,
        &[("x-signet-request-id", "req-404")],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["x-signet-request-id"], "req-404");

    let a = t.get("/health").await;
    let b = t.get("/api/memories").await;
    let ra = a.headers["x-signet-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let rb = b.headers["x-signet-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!ra.is_empty() && !rb.is_empty());
    assert_ne!(ra, rb, "each request gets its own id");
    t.stop().await;
}

#[tokio::test]
async fn history_rows_carry_request_session_actor_and_actor_type_from_headers() {
    let t = spawn_app().await;
    let id = t.remember("audited memory").await;
    let r = request(
        &t,
        "PATCH",
        &format!("/api/memory/{id}"),
        Some(json!({ "importance": 0.3, "reason": "audit" })),
        None,
        &[
            ("x-signet-request-id", "req-patch-7"),
            ("x-signet-session-id", "sess-42"),
            ("x-signet-actor", "alice"),
            ("x-signet-actor-type", "operator"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["x-signet-request-id"], "req-patch-7");
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{id}?reason=audit"),
        None,
        None,
        &[
            ("x-signet-request-id", "req-delete-8"),
            ("x-signet-session-id", "sess-43"),
            ("x-signet-actor", "bob"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let h = history(&t, &id).await;
    assert_eq!(h.len(), 3);
    assert_eq!(h[1]["event"], "updated");
    assert_eq!(h[1]["requestId"], "req-patch-7");
    assert_eq!(h[1]["sessionId"], "sess-42");
    assert_eq!(h[1]["changedBy"], "alice");
    assert_eq!(h[1]["actorType"], "operator");
    assert_eq!(h[2]["event"], "deleted");
    assert_eq!(h[2]["requestId"], "req-delete-8");
    assert_eq!(h[2]["sessionId"], "sess-43");
    assert_eq!(h[2]["changedBy"], "bob");
    t.stop().await;
}

#[tokio::test]
async fn patch_changed_by_in_the_body_names_the_changer_without_a_token() {
    let t = spawn_app().await;
    let id = t.remember("changed_by subject").await;
    let r = patch(
        &t,
        &id,
        json!({ "importance": 0.2, "reason": "r", "changed_by": "carol" }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let h = history(&t, &id).await;
    assert_eq!(h[1]["changedBy"], "carol");
    assert_eq!(get_memory(&t, &id).await.body["updated_by"], "carol");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// kill switch
// ---------------------------------------------------------------------------

#[tokio::test]
async fn frozen_mutations_are_503_while_reads_still_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Seed data with a normal daemon, then restart it frozen.
    let t = spawn_in(dir.path().to_path_buf(), |_| {}).await;
    let live = t.remember("frozen live memory about glaciers").await;
    let dead = t.remember("frozen deleted memory").await;
    assert_eq!(delete_q(&t, &dead, "reason=x").await.status, 200);
    t.stop().await;

    let t = spawn_in(dir.path().to_path_buf(), |c| {
        c.settings.memory.pipeline_v2.mutations_frozen = true
    })
    .await;
    const FROZEN: &str = "Mutations are frozen (kill switch active)";
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/memory/remember".into(),
            Some(json!({ "content": "new while frozen" })),
        ),
        (
            "POST",
            "/api/memory/save".into(),
            Some(json!({ "content": "new while frozen" })),
        ),
        (
            "POST",
            "/api/hook/remember".into(),
            Some(json!({ "content": "new while frozen" })),
        ),
        (
            "PATCH",
            format!("/api/memory/{live}"),
            Some(json!({ "importance": 0.1, "reason": "r" })),
        ),
        ("DELETE", format!("/api/memory/{live}?reason=r"), None),
        (
            "POST",
            format!("/api/memory/{dead}/recover"),
            Some(json!({ "reason": "r" })),
        ),
        (
            "POST",
            "/api/memory/forget".into(),
            Some(json!({ "ids": [live], "mode": "execute", "reason": "r" })),
        ),
        (
            "POST",
            "/api/memory/modify".into(),
            Some(json!({ "patches": [{ "id": live, "importance": 0.1 }], "reason": "r" })),
        ),
    ];
    for (method, path, body) in writes {
        let r = match body {
            Some(b) => t.send(method, &path, b).await,
            None => t.raw(method, &path, None).await,
        };
        assert_error(&r, 503);
        assert_eq!(r.body["error"], FROZEN, "{method} {path}");
    }

    // Reads still answer.
    assert_eq!(t.get("/health").await.status, 200);
    let s = t.get("/api/status").await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body["pipelineV2"]["mutationsFrozen"], true);
    let g = get_memory(&t, &live).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["importance"], 0.8);
    assert_eq!(g.body["version"], 1);
    let l = t.get("/api/memories").await;
    assert_eq!(l.status, 200);
    assert_eq!(ids_of(&l.body["memories"]), vec![live.clone()]);
    assert_eq!(
        t.get(&format!("/api/memory/{live}/history")).await.status,
        200
    );
    assert_eq!(recall_ids(&t, "glaciers").await, vec![live.clone()]);
    assert_eq!(
        get_query(&t, "/api/memory/search", &[("q", "glaciers")])
            .await
            .status,
        200
    );
    assert_eq!(
        get_query(&t, "/memory/search", &[("q", "glaciers")])
            .await
            .status,
        200
    );
    assert_eq!(get_memory(&t, &dead).await.status, 404);
    t.stop().await;
}

#[tokio::test]
async fn remember_accepts_multibyte_text_around_the_prefix_positions() {
    let t = spawn_app().await;
    let mut failures = Vec::new();
    // Multi-byte characters straddling byte 10 (the length of "critical: ").
    for content in [
        "aéééééé du texte",
        "日本語のメモです、大事",
        "[é,ü]: ünïcödé tags",
        "critical: ééééé",
        "🦀🦀🦀 crabs everywhere",
    ] {
        let sent = t
            .client
            .post(t.url("/api/memory/remember"))
            .json(&json!({ "content": content }))
            .send()
            .await;
        match sent {
            Ok(r) => {
                let r = into_resp(r).await;
                if r.status != 200 {
                    failures.push(format!("{content:?}: {} {}", r.status, r.body));
                }
            }
            Err(e) => failures.push(format!("{content:?}: no response ({e})")),
        }
    }
    // Whatever happened, the daemon must still be serving.
    assert_eq!(t.get("/health").await.status, 200);
    assert!(
        failures.is_empty(),
        "remember failed for:\n{}",
        failures.join("\n")
    );
    let r = recall(&t, json!({ "query": "ünïcödé" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["tags"], "é,ü");
    assert_eq!(t.get("/health").await.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn recall_with_a_bad_limit_or_wrong_field_types_is_400() {
    let t = spawn_app().await;
    t.remember("limit validation target").await;
    for body in [
        json!({ "query": "target", "limit": 0 }),
        json!({ "query": "target", "limit": -1 }),
        json!({ "query": "target", "limit": "5" }),
        json!({ "query": "target", "pinned": "yes" }),
        json!({ "query": "target", "importance_min": "high" }),
    ] {
        assert_error(&recall(&t, body).await, 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn recall_increments_the_access_count_of_what_it_returned() {
    let t = spawn_app().await;
    let hit = t.remember("rehearsed memory about puffins").await;
    let miss = t.remember("untouched memory about trains").await;
    assert_eq!(recall_ids(&t, "puffins").await, vec![hit.clone()]);
    let mut count = 0;
    for _ in 0..50 {
        count = get_memory(&t, &hit).await.body["access_count"]
            .as_i64()
            .unwrap();
        if count >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count, 1, "access_count after one recall");
    let g = get_memory(&t, &hit).await.body;
    assert!(g["last_accessed"].is_string(), "{g:?}");
    assert_eq!(get_memory(&t, &miss).await.body["access_count"], 0);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// recall ranking (issue 11): any-term keyword leg, who, neighbour context,
// no drift with use, feedback
// ---------------------------------------------------------------------------

/// Remember `content` said by `who` in `project`; returns the id.
async fn said(t: &TestApp, project: &str, who: &str, content: &str) -> String {
    remember_id(
        t,
        json!({ "content": content, "who": who, "project": project }),
    )
    .await
}

async fn recall_in(t: &TestApp, project: &str, query: &str) -> Vec<String> {
    let r = recall(t, json!({ "query": query, "project": project })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    ids_of(&r.body["results"])
}

#[tokio::test]
async fn a_natural_question_finds_memories_sharing_any_content_word() {
    let t = spawn_app().await;
    let tokyo = t
        .remember("Calvin flew to Tokyo in April for the concert")
        .await;
    let guitar = t.remember("Calvin bought a vintage guitar").await;
    let other = t.remember("Dave repaired the brakes of his car").await;
    // Enough other memories that a name on two of them is a rare word
    // (BM25 gives a word on most rows no weight).
    for i in 0..6 {
        t.remember(&format!("unrelated note {i} about gardening"))
            .await;
    }
    let r = recall(
        &t,
        json!({ "query": "When did Calvin first travel to Tokyo?" }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["method"], "keyword");
    let ids = ids_of(&r.body["results"]);
    assert_eq!(ids.first(), Some(&tokyo), "{:?}", r.body);
    assert!(
        ids.contains(&guitar),
        "a partial match is found too: {ids:?}"
    );
    assert!(!ids.contains(&other), "{ids:?}");
    // Only stop words: nothing to match, not an error.
    let r = recall(&t, json!({ "query": "what is it that you did?" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(ids_of(&r.body["results"]).is_empty());
    t.stop().await;
}

#[tokio::test]
async fn explicit_operators_and_quoted_phrases_keep_their_meaning() {
    let t = spawn_app().await;
    let both = t.remember("alpha and bravo share a line").await;
    let alpha = t.remember("alpha stands alone here").await;
    let bravo = t.remember("bravo stands alone too").await;
    let phrase = t.remember("she joined a support group yesterday").await;
    let apart = t.remember("the group gave her support").await;
    assert_eq!(recall_ids(&t, "alpha AND bravo").await, vec![both.clone()]);
    assert_eq!(recall_ids(&t, "alpha NOT bravo").await, vec![alpha.clone()]);
    assert_eq!(
        id_set(&recall(&t, json!({ "query": "alpha OR bravo" })).await.body["results"]),
        set(&[&both, &alpha, &bravo])
    );
    assert_eq!(
        recall_ids(&t, "\"support group\"").await,
        vec![phrase.clone()]
    );
    assert_eq!(
        id_set(&recall(&t, json!({ "query": "support group" })).await.body["results"]),
        set(&[&phrase, &apart])
    );
    t.stop().await;
}

#[tokio::test]
async fn control_characters_and_query_syntax_in_user_text_are_never_a_500() {
    let t = spawn_app().await;
    let id = t.remember("the heron nests by the river").await;
    for q in [
        "a\u{0}b heron",
        "heron\u{1}\u{7f}\u{1b}[0m",
        "\"heron",
        "heron\"",
        "heron*",
        "NEAR(heron river)",
        "content:heron",
        "^heron",
        "heron AND",
        "NOT heron",
        "(((",
        "\u{0}",
    ] {
        let r = recall(&t, json!({ "query": q })).await;
        assert!(
            r.status == 200 || r.status == 400,
            "{q:?}: {} {:?}",
            r.status,
            r.body
        );
        // (`content:heron` is the phrase "content heron": punctuation
        // inside a word joins its parts, as in `us-east-1`.)
        if q.contains("heron") && !q.starts_with("NOT") && !q.contains(':') {
            assert!(
                ids_of(&r.body["results"]).contains(&id),
                "{q:?}: {:?}",
                r.body
            );
        }
    }
    let r = get_query(&t, "/api/memory/search", &[("q", "a\u{0}b heron")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids_of(&r.body["results"]), vec![id.clone()]);
    let r = get_query(&t, "/memory/search", &[("q", "\u{0}")]).await;
    assert!(r.status == 200 || r.status == 400, "{:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn who_is_searched_and_a_named_speaker_ranks_first() {
    let t = spawn_app().await;
    let mel = said(&t, "c1", "Melanie", "I went to a support group yesterday").await;
    let caro = said(&t, "c1", "Caroline", "I went to a support group last week").await;
    // The speaker's name is only in `who` (Melanie's turn may follow as
    // the dialogue's context, after it).
    assert_eq!(recall_in(&t, "c1", "Caroline").await.first(), Some(&caro));
    let ids = recall_in(&t, "c1", "When did Caroline go to the support group?").await;
    assert_eq!(ids, vec![caro.clone(), mel.clone()]);
    let ids = recall_in(&t, "c1", "When did Melanie go to the support group?").await;
    assert_eq!(ids, vec![mel.clone(), caro.clone()]);
    t.stop().await;
}

/// A short dialogue in project `conv`: a question about a marathon, a
/// reply that names nothing, and turns around them; another project
/// mentions the marathon too.
async fn marathon_conversation(t: &TestApp) -> (String, String, String) {
    said(t, "conv", "Ann", "I baked bread this morning").await;
    let question = said(t, "conv", "Ann", "Did you finish the Boston marathon?").await;
    let reply = said(t, "conv", "Bob", "Yes! It took me four hours.").await;
    said(t, "conv", "Bob", "My legs still hurt today").await;
    said(t, "conv", "Ann", "I painted the fence green").await;
    let other = said(t, "other", "Zed", "Boston marathon results are out").await;
    (question, reply, other)
}

#[tokio::test]
async fn a_reply_is_found_through_the_turn_it_answers() {
    let t = spawn_app().await;
    let (question, reply, other) = marathon_conversation(&t).await;
    let ids = recall_in(&t, "conv", "Boston marathon").await;
    assert_eq!(
        ids,
        vec![question.clone(), reply.clone()],
        "the reply comes with it"
    );
    // Unfiltered: neighbours come only from the same project, and only
    // across speakers (Ann's bread and Bob's legs stay out).
    let r = recall(&t, json!({ "query": "Boston marathon" })).await;
    assert_eq!(
        id_set(&r.body["results"]),
        set(&[&question, &reply, &other]),
        "{:?}",
        r.body
    );
    // Neighbours pass the filters like everything else.
    let r = recall(
        &t,
        json!({ "query": "Boston marathon", "project": "conv", "who": "Ann" }),
    )
    .await;
    assert_eq!(ids_of(&r.body["results"]), vec![question.clone()]);
    t.stop().await;

    // Turned off, the reply shares no word with the query and is not found.
    let t = spawn_with(|c| c.settings.search.neighbour_weight = 0.0).await;
    let (question, _, _) = marathon_conversation(&t).await;
    assert_eq!(
        recall_in(&t, "conv", "Boston marathon").await,
        vec![question]
    );
    t.stop().await;

    // A reply stored more than the window later is no context.
    let clock = signet::clock::Clock::default();
    let c = clock.clone();
    let t = spawn_with(move |cfg| cfg.clock = c).await;
    let question = said(&t, "conv", "Ann", "Did you finish the Boston marathon?").await;
    clock.advance(std::time::Duration::from_secs(31 * 60));
    said(&t, "conv", "Bob", "Yes! It took me four hours.").await;
    assert_eq!(
        recall_in(&t, "conv", "Boston marathon").await,
        vec![question]
    );
    t.stop().await;
}

#[tokio::test]
async fn asking_again_ranks_the_same_however_often_a_memory_was_returned() {
    let t = spawn_with(|c| {
        c.settings.server.recall_cache_entries = 0;
        c.settings.server.access_flush_ms = 50;
    })
    .await;
    let strong = said(&t, "p", "a", "kiwi kiwi kiwi orchard").await;
    let mid = said(&t, "p", "b", "kiwi orchard in the valley").await;
    let weak = said(
        &t,
        "p",
        "c",
        "one kiwi among many other words about farms and fields",
    )
    .await;
    let first = recall(&t, json!({ "query": "kiwi orchard", "project": "p" })).await;
    assert_eq!(
        ids_of(&first.body["results"]),
        vec![strong.clone(), mid.clone(), weak.clone()]
    );
    // The weakest is returned many times on its own.
    for _ in 0..30 {
        let r = recall(&t, json!({ "query": "kiwi", "who": "c" })).await;
        assert_eq!(ids_of(&r.body["results"]), vec![weak.clone()]);
    }
    let mut count = 0;
    for _ in 0..50 {
        count = get_memory(&t, &weak).await.body["access_count"]
            .as_i64()
            .unwrap_or(0);
        if count >= 31 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(count >= 31, "access counts are still recorded: {count}");
    let again = recall(&t, json!({ "query": "kiwi orchard", "project": "p" })).await;
    assert_eq!(
        again.body["results"], first.body["results"],
        "same ranks, same scores"
    );
    t.stop().await;
}

#[tokio::test]
async fn scores_keep_full_precision_for_the_order_and_two_decimals_on_the_wire() {
    let t = spawn_app().await;
    for i in 0..12 {
        t.remember(&format!("walrus note number {i} {}", "filler ".repeat(i)))
            .await;
    }
    let r = recall(&t, json!({ "query": "walrus note", "limit": 12 })).await;
    let scores: Vec<f64> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| x["score"].as_f64().expect("score"))
        .collect();
    assert_eq!(scores.len(), 12);
    for s in &scores {
        assert_eq!((s * 100.0).round() / 100.0, *s, "two decimals: {scores:?}");
        assert!((0.0..=1.0).contains(s), "{scores:?}");
    }
    // Shorter notes rank first (BM25 length normalisation), in order.
    let ids = ids_of(&r.body["results"]);
    let contents: Vec<usize> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| x["content"].as_str().unwrap_or_default().len())
        .collect();
    assert!(contents.windows(2).all(|w| w[0] <= w[1]), "{contents:?}");
    // The same query gives the same order every time.
    for _ in 0..3 {
        let again = recall(&t, json!({ "query": "walrus note", "limit": 12 })).await;
        assert_eq!(ids_of(&again.body["results"]), ids);
    }
    t.stop().await;
}

#[tokio::test]
async fn feedback_records_ratings_with_signets_shape_and_errors() {
    let t = spawn_app().await;
    let a = t.remember("feedback target one").await;
    let b = t.remember("feedback target two").await;
    let r = t
        .post(
            "/api/memory/feedback",
            json!({ "sessionKey": "s1", "feedback": { a.clone(): 1, b.clone(): -3, "no-such-id": 0.5, "x": "good" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({ "ok": true, "recorded": 3 }));
    // A second rating of `a` in the same session is averaged in.
    let r = t
        .post(
            "/api/memory/feedback",
            json!({ "sessionKey": "s1", "feedback": { a.clone(): 0 } }),
        )
        .await;
    assert_eq!(r.body["recorded"], 1);
    let conn = rusqlite::Connection::open_with_flags(
        signet::store::db_path(&t.workspace),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");
    let mut rows: Vec<(String, f64, i64)> = conn
        .prepare("SELECT memory_id, score, count FROM memory_feedback WHERE session_key = 's1'")
        .expect("sql")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort_by(|x, y| x.0.cmp(&y.0));
    let mut want = vec![(a.clone(), 0.5, 2), (b.clone(), -1.0, 1)];
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(rows, want, "clamped, averaged, unknown ids dropped");
    for (body, msg) in [
        (
            json!({ "feedback": { a.clone(): 1 } }),
            "sessionKey and feedback required",
        ),
        (
            json!({ "sessionKey": "s1" }),
            "sessionKey and feedback required",
        ),
        (
            json!({ "sessionKey": "s1", "feedback": [1] }),
            "sessionKey and feedback required",
        ),
        (
            json!({ "sessionKey": "s1", "feedback": { a.clone(): "yes" } }),
            "Invalid feedback format \u{2014} expected map of ID to number (-1 to 1)",
        ),
    ] {
        let r = t.post("/api/memory/feedback", body).await;
        assert_error(&r, 400);
        assert_eq!(r.body["error"], msg);
    }
    let r = t
        .raw("POST", "/api/memory/feedback", Some(b"{not json".to_vec()))
        .await;
    assert_error(&r, 400);
    t.stop().await;
}

#[tokio::test]
async fn forget_by_query_selects_by_what_a_memory_says_not_who_said_it() {
    let t = spawn_app().await;
    let said_by_alice = said(&t, "p", "Alice", "deploy staging on friday").await;
    let about_alice = said(&t, "p", "Bob", "alice reviews the deploy").await;
    // Recall finds both (who is part of the keyword index)...
    assert_eq!(
        id_set(&recall(&t, json!({ "query": "alice" })).await.body["results"]),
        set(&[&said_by_alice, &about_alice])
    );
    // ...but a forget by query only what mentions her.
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "query": "alice", "mode": "preview" }),
        )
        .await;
    assert_eq!(r.body["count"], 1, "{:?}", r.body);
    assert_eq!(
        r.body["candidates"][0]["id"].as_str(),
        Some(about_alice.as_str()),
        "{:?}",
        r.body
    );
    t.stop().await;
}
