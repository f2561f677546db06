//! Black-box tests of the harness hooks and session routes
//! (`SPEC-agents.md` §1, §2, §8) over real HTTP: Signet's shapes and
//! messages, claims and 409s, `x-signet-no-hooks`, bypass, the dedup stub,
//! the identity files, the inject budgets, the prompt hook's 5-turn window
//! and feedback, checkpoints and their redaction, the transcript path
//! rules, and team mode (401, 403, scopes, session tokens).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signet::auth::Role;
use signet::config::Config;

use crate::helpers::{
    admin, assert_error, call, model_dir, project, request, spawn_app, spawn_with, team, token,
    Resp, TestApp,
};

const HDR: &str = "# Current Date & Time\n";

async fn hook(t: &TestApp, name: &str, body: Value) -> Resp {
    call(t, "POST", &format!("/api/hooks/{name}"), Some(body), None).await
}

async fn hook_as(t: &TestApp, name: &str, body: Value, tok: &str) -> Resp {
    call(
        t,
        "POST",
        &format!("/api/hooks/{name}"),
        Some(body),
        Some(tok),
    )
    .await
}

async fn hook_ok(t: &TestApp, name: &str, body: Value) -> Value {
    let r = hook(t, name, body).await;
    assert_eq!(r.status, 200, "{name}: {:?}", r.body);
    r.body
}

async fn prompt(t: &TestApp, key: &str, text: &str) -> Value {
    hook_ok(
        t,
        "user-prompt-submit",
        json!({ "harness": "claude-code", "sessionKey": key, "userPrompt": text }),
    )
    .await
}

fn inject(v: &Value) -> &str {
    v["inject"].as_str().expect("inject")
}

fn write(t: &TestApp, name: &str, text: &str) {
    std::fs::write(t.workspace.join(name), text).expect("write workspace file");
}

/// Wait for `f` to hold, up to 5 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn session_start_injects_identity_files_memories_and_the_date() {
    let t = spawn_app().await;
    write(&t, "AGENTS.md", "Always run the tests before pushing.");
    write(&t, "SOUL.md", "Curious and careful.");
    write(
        &t,
        "IDENTITY.md",
        "- name: Mika\n- role: release engineer\n",
    );
    write(&t, "USER.md", "The user is Ana; she prefers short answers.");
    write(
        &t,
        "MEMORY.md",
        "<!-- generated 2026-01-01 10:00 -->\nWorking on the billing migration.",
    );
    let id = t
        .remember("The staging database is postgres 16 on db-stage-2")
        .await;

    assert_error(&hook(&t, "session-start", json!({})).await, 400);
    assert_eq!(
        hook(&t, "session-start", json!({ "project": "/x" }))
            .await
            .body["error"],
        "harness is required"
    );
    let v = hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "project": "/repo" }),
    )
    .await;
    assert_eq!(
        v["identity"],
        json!({ "name": "Mika", "description": "release engineer" })
    );
    assert_eq!(
        v["recentContext"],
        "<!-- generated 2026-01-01 10:00 -->\nWorking on the billing migration."
    );
    assert_eq!(v["memories"][0]["id"], id.as_str());
    assert_eq!(v["memories"][0]["type"], "fact");
    for k in ["content", "importance", "created_at"] {
        assert!(v["memories"][0].get(k).is_some(), "{k}: {v}");
    }
    let s = inject(&v);
    assert!(
        s.starts_with("[memory active | /remember | /recall]\n\n# Current Date & Time\n"),
        "{s}"
    );
    // The parts come in Signet's order.
    let order = [
        "# Current Date & Time",
        "## Agent Instructions\nAlways run the tests before pushing.",
        "## Soul\nCurious and careful.",
        "## Identity\n- name: Mika",
        "## About Your User\nThe user is Ana",
        "## Working Memory\n<!-- generated",
        "## Relevant Memories (auto-loaded | scored by importance x recency | 1 results)\n- The staging database is postgres 16 on db-stage-2 (",
    ];
    let mut at = 0;
    for part in order {
        let found = s[at..]
            .find(part)
            .unwrap_or_else(|| panic!("{part:?} missing after {at}: {s}"));
        at += found + part.len();
    }
    // " (TZ)" after the en-US date and time.
    let now_line = s.lines().nth(3).expect("date line");
    assert!(
        now_line.contains(" at ") && now_line.ends_with(')'),
        "{now_line}"
    );
    t.stop().await;
}

#[tokio::test]
async fn session_start_without_identity_files_names_the_agent_from_config_or_not_at_all() {
    let t = spawn_app().await;
    let v = hook_ok(&t, "session-start", json!({ "harness": "opencode" })).await;
    assert_eq!(v["identity"], json!({ "name": "Agent" }));
    assert!(v.get("recentContext").is_none(), "{v}");
    assert_eq!(v["memories"], json!([]));
    let s = inject(&v);
    for absent in [
        "## Agent Instructions",
        "## Soul",
        "## Working Memory",
        "## Relevant Memories",
    ] {
        assert!(!s.contains(absent), "{absent}: {s}");
    }
    t.stop().await;

    let t = spawn_with(|cfg: &mut Config| {
        cfg.settings.agent =
            yaml_serde::from_str("name: Nova\ndescription: a build bot").expect("yaml");
    })
    .await;
    let v = hook_ok(&t, "session-start", json!({ "harness": "opencode" })).await;
    assert_eq!(
        v["identity"],
        json!({ "name": "Nova", "description": "a build bot" })
    );
    assert!(
        inject(&v).contains("## Agent Instructions\nYou are Nova, a build bot."),
        "{v}"
    );
    t.stop().await;
}

#[tokio::test]
async fn identity_files_are_capped_and_the_inject_is_cut_at_24000_chars() {
    let t = spawn_app().await;
    write(&t, "AGENTS.md", &"a".repeat(13_000));
    write(&t, "USER.md", &"u".repeat(7_000));
    write(&t, "MEMORY.md", &"m".repeat(9_000));
    write(&t, "SOUL.md", &"s".repeat(3_000));
    let v = hook_ok(&t, "session-start", json!({ "harness": "claude-code" })).await;
    let s = inject(&v);
    // AGENTS.md capped at 12000 with the marker.
    assert!(
        s.contains(&format!("{}\n[truncated]", "a".repeat(12_000))),
        "AGENTS.md cap"
    );
    assert!(!s.contains(&"a".repeat(12_001)));
    assert!(
        s.ends_with("\n[context truncated]"),
        "{}",
        &s[s.len() - 60..]
    );
    assert!(s.chars().count() <= 24_000, "{}", s.chars().count());
    // MEMORY.md is still served whole beside the cut inject.
    assert_eq!(v["recentContext"].as_str().map(str::len), Some(9_000));
    t.stop().await;
}

#[tokio::test]
async fn session_start_memories_fit_the_2000_char_budget_project_first() {
    let t = spawn_app().await;
    for i in 0..30 {
        let body = json!({ "content": format!("{i:02} {}", "filler words ".repeat(7)) });
        assert_eq!(t.post("/api/memory/remember", body).await.status, 200);
    }
    let mine =
        json!({ "content": "the repo uses cargo nextest", "project": "/repo", "importance": 0.3 });
    assert_eq!(t.post("/api/memory/remember", mine).await.status, 200);
    let v = hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "project": "/repo" }),
    )
    .await;
    let mems = v["memories"].as_array().expect("memories");
    let total: usize = mems
        .iter()
        .map(|m| m["content"].as_str().map_or(0, str::len))
        .sum();
    assert!(total <= 2000, "{total}");
    assert!(mems.len() >= 15 && mems.len() < 31, "{}", mems.len());
    assert_eq!(mems[0]["content"], "the repo uses cargo nextest");
    t.stop().await;
}

#[tokio::test]
async fn a_repeated_session_key_gets_the_dedup_stub_until_session_end() {
    let t = spawn_app().await;
    t.remember("deploys go through the release train").await;
    let body = json!({ "harness": "claude-code", "sessionKey": "s-1" });
    let first = hook_ok(&t, "session-start", body.clone()).await;
    assert!(inject(&first).contains("## Relevant Memories"));
    let again = hook_ok(&t, "session-start", body.clone()).await;
    assert_eq!(again["identity"], json!({ "name": "Agent" }));
    assert_eq!(again["memories"], json!([]));
    let s = inject(&again);
    assert!(
        s.starts_with("[memory active | /remember | /recall]\n# Current Date & Time\n"),
        "{s}"
    );
    assert_eq!(s.lines().count(), 3, "{s}");
    let end = hook_ok(
        &t,
        "session-end",
        json!({ "harness": "claude-code", "sessionKey": "s-1" }),
    )
    .await;
    assert_eq!(end, json!({ "memoriesSaved": 0 }));
    let fresh = hook_ok(&t, "session-start", body).await;
    assert!(inject(&fresh).contains("## Relevant Memories"));
    t.stop().await;
}

#[tokio::test]
async fn runtime_path_claims_give_409_to_the_other_path_until_session_end() {
    let t = spawn_app().await;
    let start =
        |path: &str| json!({ "harness": "opencode", "sessionKey": "k1", "runtimePath": path });
    hook_ok(&t, "session-start", start("plugin")).await;
    let r = hook(&t, "session-start", start("legacy")).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"], "session claimed by plugin path");
    // The header wins over the body.
    let r = request(
        &t,
        "POST",
        "/api/hooks/user-prompt-submit",
        Some(json!({ "harness": "opencode", "sessionKey": "k1", "userPrompt": "deploy steps", "runtimePath": "plugin" })),
        None,
        &[("x-signet-runtime-path", "legacy")],
    )
    .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    for name in [
        "remember",
        "recall",
        "pre-compaction",
        "compaction-complete",
    ] {
        let body = json!({ "harness": "opencode", "sessionKey": "k1", "runtimePath": "legacy",
                           "content": "x y z", "query": "x", "summary": "s" });
        assert_eq!(hook(&t, name, body).await.status, 409, "{name}");
    }
    // The owner and pathless callers pass.
    let ok = json!({ "harness": "opencode", "sessionKey": "k1", "userPrompt": "deploy steps" });
    assert_eq!(hook(&t, "user-prompt-submit", ok).await.status, 200);
    let sessions = t.get("/api/sessions").await;
    assert_eq!(sessions.body["count"], 1);
    assert_eq!(sessions.body["sessions"][0]["key"], "k1");
    assert_eq!(sessions.body["sessions"][0]["runtimePath"], "plugin");
    assert_eq!(sessions.body["sessions"][0]["bypassed"], false);
    assert!(sessions.body["sessions"][0]["claimedAt"].is_string());
    // session-end never 409s and releases the claim.
    let end = json!({ "harness": "opencode", "sessionKey": "k1", "runtimePath": "legacy" });
    assert_eq!(hook(&t, "session-end", end).await.status, 200);
    hook_ok(&t, "session-start", start("legacy")).await;
    // Only plugin and legacy exist.
    assert_error(&hook(&t, "session-start", start("daemon")).await, 400);
    t.stop().await;
}

#[tokio::test]
async fn no_hooks_header_answers_each_hook_with_signets_no_op() {
    let t = spawn_app().await;
    let expect = [
        ("session-start", json!({ "inject": "", "memories": [] })),
        (
            "user-prompt-submit",
            json!({ "inject": "", "memoryCount": 0 }),
        ),
        ("session-end", json!({ "memoriesSaved": 0 })),
        ("remember", json!({ "success": true, "memories": [] })),
        ("recall", json!({ "memories": [], "count": 0 })),
    ];
    for (name, body) in expect {
        let r = request(
            &t,
            "POST",
            &format!("/api/hooks/{name}"),
            Some(json!({})),
            None,
            &[("x-signet-no-hooks", "1")],
        )
        .await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.body, body, "{name}");
    }
    // Nothing was stored or started.
    assert_eq!(t.get("/api/sessions").await.body["count"], 0);
    // Signet's pre-compaction ignores the header: the prompt still comes.
    let r = request(
        &t,
        "POST",
        "/api/hooks/pre-compaction",
        Some(json!({ "harness": "claude-code" })),
        None,
        &[("x-signet-no-hooks", "1")],
    )
    .await;
    assert!(r.body["summaryPrompt"].as_str().is_some(), "{:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn bypass_turns_a_session_into_no_ops_and_session_end_clears_it() {
    let t = spawn_app().await;
    t.remember("the cache TTL is ten minutes").await;
    let r = call(
        &t,
        "POST",
        "/api/sessions/nope/bypass",
        Some(json!({ "enabled": true })),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"], "Session not found");
    // A CLI session (no runtime path, never claimed) can be bypassed here.
    hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "sessionKey": "b 1" }),
    )
    .await;
    let r = call(
        &t,
        "POST",
        "/api/sessions/b%201/bypass",
        Some(json!({ "enabled": "yes" })),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "enabled (boolean) is required");
    let r = call(
        &t,
        "POST",
        "/api/sessions/b%201/bypass",
        Some(json!({ "enabled": true })),
        None,
    )
    .await;
    assert_eq!(r.body, json!({ "key": "b 1", "bypassed": true }));
    assert_eq!(t.get("/api/sessions/b%201").await.body["bypassed"], true);

    let v = prompt(&t, "b 1", "what is the cache TTL").await;
    assert_eq!(
        v,
        json!({ "inject": "", "memoryCount": 0, "bypassed": true })
    );
    let b = json!({ "harness": "claude-code", "sessionKey": "b 1" });
    assert_eq!(
        hook_ok(&t, "session-start", b.clone()).await,
        json!({ "inject": "", "memories": [], "bypassed": true })
    );
    let mut rem = b.clone();
    rem["content"] = json!("should not be stored");
    assert_eq!(
        hook_ok(&t, "remember", rem).await,
        json!({ "success": true, "memories": [], "bypassed": true })
    );
    let mut rec = b.clone();
    rec["query"] = json!("cache");
    assert_eq!(
        hook_ok(&t, "recall", rec).await,
        json!({ "memories": [], "count": 0, "bypassed": true })
    );
    assert_eq!(
        hook_ok(&t, "session-end", b.clone()).await,
        json!({ "memoriesSaved": 0, "bypassed": true })
    );
    assert_eq!(t.get("/api/sessions/b%201").await.status, 404);
    // After the end the key starts over, not bypassed.
    let v = prompt(&t, "b 1", "what is the cache TTL").await;
    assert_eq!(v["memoryCount"], 1, "{v}");
    t.stop().await;
}

#[tokio::test]
async fn prompt_submit_injects_matching_memories_in_signets_format() {
    let t = spawn_app().await;
    let id = t
        .remember("The billing-service deploys with helm to the prod cluster")
        .await;
    t.remember("Lunch is at noon").await;
    let r = hook(
        &t,
        "user-prompt-submit",
        json!({ "harness": "claude-code" }),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"],
        "harness and userMessage or userPrompt are required"
    );
    assert_error(
        &hook(
            &t,
            "user-prompt-submit",
            json!({ "harness": "x", "userPrompt": "   " }),
        )
        .await,
        400,
    );

    let v = prompt(&t, "p1", "How do I deploy the billing-service?").await;
    assert_eq!(v["memoryCount"], 1, "{v}");
    assert_eq!(
        v["queryTerms"],
        json!(["billing-service", "deploy", "billing", "service"])
    );
    assert_eq!(v["engine"], "keyword");
    let s = inject(&v);
    assert!(s.starts_with(HDR), "{s}");
    assert!(
        s.contains("\n[signet:recall | query=\"billing-service deploy billing service\" | results=1 | engine=keyword]\n- The billing-service deploys with helm to the prod cluster ("),
        "{s}"
    );
    assert!(s.contains(&format!(
        "<memory-feedback>\nRate injected memories using the mcp__signet__memory_feedback tool. Pass session_key \"p1\" and a ratings map of memory ID to score (-1 to 1). 0=unused, 1=directly helpful, -1=harmful.\nIDs: {id}\n</memory-feedback>"
    )), "{s}");

    // Nothing relevant: the date header alone.
    let v = prompt(&t, "p1", "quantum chromodynamics lattice").await;
    assert_eq!(v["memoryCount"], 0);
    assert!(
        inject(&v).starts_with(HDR) && !inject(&v).contains("signet:recall"),
        "{v}"
    );
    // Only stop words: the header, no terms.
    let v = prompt(&t, "p1", "what is it?").await;
    assert_eq!(v["memoryCount"], 0);
    assert!(v.get("queryTerms").is_none(), "{v}");
    // userMessage is preferred over userPrompt.
    let v = hook_ok(
        &t,
        "user-prompt-submit",
        json!({ "harness": "x", "userMessage": "lunch time", "userPrompt": "billing-service" }),
    )
    .await;
    assert!(inject(&v).contains("Lunch is at noon"), "{v}");
    t.stop().await;
}

#[tokio::test]
async fn prompt_submit_cleans_untrusted_metadata_before_searching() {
    let t = spawn_app().await;
    t.remember("zeppelin hangar opens at dawn").await;
    let text = "Conversation info (untrusted metadata):\n```json\n{\"channel\": \"zeppelin\"}\n```\n<@991> what about the weather";
    let v = prompt(&t, "c1", text).await;
    assert_eq!(v["queryTerms"], json!(["weather"]), "{v}");
    assert_eq!(v["memoryCount"], 0);
    t.stop().await;
}

#[tokio::test]
async fn prompt_submit_respects_the_500_char_and_5_result_budget() {
    let t = spawn_app().await;
    for i in 0..8 {
        t.remember(&format!(
            "kubernetes note {i}: {}",
            "padding text ".repeat(10)
        ))
        .await;
    }
    let v = prompt(&t, "budget", "kubernetes").await;
    // Each is ~150 chars: three fit in 500.
    assert_eq!(v["memoryCount"], 3, "{v}");
    let t2 = spawn_app().await;
    for i in 0..8 {
        t2.remember(&format!("redis fact {i}")).await;
    }
    let v = prompt(&t2, "budget", "redis").await;
    assert_eq!(v["memoryCount"], 5, "{v}");
    let long = "x".repeat(900);
    t2.remember(&format!("elastic {long}")).await;
    let v = prompt(&t2, "other", "elastic").await;
    // A memory over 500 chars is cut to fit, marker included (Signet's
    // cut leaves 512 chars, which never fit its own budget).
    assert_eq!(v["memoryCount"], 1, "{v}");
    assert!(
        inject(&v).contains(&format!("elastic {} [truncated] (", "x".repeat(480))),
        "{v}"
    );
    t.stop().await;
    t2.stop().await;
}

#[tokio::test]
async fn a_memory_is_not_injected_again_within_five_turns_of_a_session() {
    let t = spawn_app().await;
    t.remember("the VPN gateway is vpn-3.corp").await;
    let counts: Vec<u64> = {
        let mut out = Vec::new();
        for _ in 0..7 {
            out.push(
                prompt(&t, "w", "which VPN gateway").await["memoryCount"]
                    .as_u64()
                    .unwrap_or(99),
            );
        }
        out
    };
    assert_eq!(counts, vec![1, 0, 0, 0, 0, 0, 1]);
    // Another session is not affected.
    assert_eq!(
        prompt(&t, "w2", "which VPN gateway").await["memoryCount"],
        1
    );
    // compaction-complete starts the window over.
    prompt(&t, "w", "which VPN gateway").await;
    let c = hook_ok(
        &t,
        "compaction-complete",
        json!({ "harness": "claude-code", "sessionKey": "w", "summary": "We set up the VPN." }),
    )
    .await;
    assert_eq!(c["success"], true);
    let v = prompt(&t, "w", "which VPN gateway").await;
    assert!(inject(&v).contains("vpn-3.corp"), "{v}");
    t.stop().await;
}

#[tokio::test]
async fn prompt_feedback_is_recorded_for_the_session() {
    let t = spawn_app().await;
    let id = t.remember("the queue is rabbitmq").await;
    let body = json!({ "harness": "claude-code", "sessionKey": "fb", "userPrompt": "queue broker",
                       "memory_feedback": { id.clone(): 0.8, "not-a-memory": 1, "bad": "x" } });
    assert_eq!(hook(&t, "user-prompt-submit", body).await.status, 200);
    let conn = rusqlite::Connection::open_with_flags(
        signet::store::db_path(&t.workspace),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let rows: Vec<(String, f64)> = conn
        .prepare("SELECT memory_id, score FROM memory_feedback WHERE session_key = 'fb'")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows, vec![(id, 0.8)]);
    t.stop().await;
}

#[tokio::test]
async fn ten_prompts_write_a_redacted_periodic_checkpoint() {
    let t = spawn_app().await;
    hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "sessionKey": "cp", "project": "/repo/a" }),
    )
    .await;
    for i in 0..9 {
        prompt(&t, "cp", &format!("step {i} of the rollout")).await;
    }
    prompt(
        &t,
        "cp",
        "my password is hunter2hunter2 and token sk-abcdefghijklmnop",
    )
    .await;
    eventually("periodic checkpoint", || async {
        t.get("/api/checkpoints/cp").await.body["count"] == 1
    })
    .await;
    let rows = t.get("/api/checkpoints/cp").await.body;
    let cp = &rows["checkpoints"][0];
    assert_eq!(cp["trigger"], "periodic");
    assert_eq!(cp["session_key"], "cp");
    assert_eq!(cp["harness"], "claude-code");
    assert_eq!(cp["prompt_count"], 10);
    let digest = cp["digest"].as_str().expect("digest");
    assert!(
        digest.starts_with("## Session Checkpoint\nProject: /repo/a\nPrompts: 10 | Duration: 0m"),
        "{digest}"
    );
    assert!(
        digest.contains("### Recent Prompts\n- step 0 of the rollout"),
        "{digest}"
    );
    assert!(
        digest.contains("[REDACTED]") && !digest.contains("hunter2") && !digest.contains("sk-abc"),
        "{digest}"
    );
    for k in [
        "id",
        "project_normalized",
        "memory_queries",
        "recent_remembers",
        "focal_entity_ids",
        "created_at",
    ] {
        assert!(cp.get(k).is_some(), "{k}");
    }
    // By project (required), newest first.
    let r = t.get("/api/checkpoints").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "project query parameter required");
    let r = t.get("/api/checkpoints?project=/repo/a&limit=5").await;
    assert_eq!(r.body["count"], 1);
    // The next session of the project starts with the recovery digest.
    let v = hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "sessionKey": "cp2", "project": "/repo/a" }),
    )
    .await;
    assert!(
        inject(&v).contains("\n## Session Recovery Context\n## Session Checkpoint"),
        "{v}"
    );
    t.stop().await;
}

#[tokio::test]
async fn pre_compaction_gives_the_summary_prompt_and_writes_a_checkpoint() {
    let t = spawn_app().await;
    t.remember("the release branch is cut on thursdays").await;
    hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "sessionKey": "pc" }),
    )
    .await;
    prompt(&t, "pc", "release branch").await;
    let v = hook_ok(
        &t,
        "pre-compaction",
        json!({ "harness": "claude-code", "sessionKey": "pc", "sessionContext": "we were cutting a release", "project": "/repo" }),
    )
    .await;
    let p = v["summaryPrompt"].as_str().expect("summaryPrompt");
    let g = v["guidelines"].as_str().expect("guidelines");
    assert!(
        p.starts_with(&format!(
            "Pre-compaction memory flush. Store durable memories now.\n\n{g}\n\n"
        )),
        "{p}"
    );
    assert!(
        p.contains("\nRecent memories for reference:\n- the release branch is cut on thursdays\n"),
        "{p}"
    );
    let r = t.get("/api/checkpoints/pc").await;
    assert_eq!(r.body["checkpoints"][0]["trigger"], "pre_compaction");
    let d = r.body["checkpoints"][0]["digest"]
        .as_str()
        .unwrap_or_default();
    assert!(
        d.starts_with("## Pre-Compaction Checkpoint")
            && d.contains("### Session Context\nwe were cutting a release"),
        "{d}"
    );
    t.stop().await;
}

#[tokio::test]
async fn compaction_complete_stores_the_summary_as_a_session_summary_memory() {
    let t = spawn_app().await;
    let r = hook(
        &t,
        "compaction-complete",
        json!({ "harness": "claude-code" }),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "harness and summary are required");
    let v = hook_ok(
        &t,
        "compaction-complete",
        json!({ "harness": "claude-code", "summary": "We migrated billing to postgres." }),
    )
    .await;
    assert_eq!(v["success"], true);
    let id = v["memoryId"].as_str().expect("memoryId");
    let m = t.get(&format!("/api/memory/{id}")).await.body;
    assert_eq!(m["type"], "session_summary");
    assert_eq!(m["importance"], 0.8);
    assert_eq!(m["who"], "system");
    assert_eq!(m["source_type"], "claude-code");
    assert_eq!(m["tags"], "session,summary,claude-code");
    t.stop().await;
}

#[tokio::test]
async fn hook_remember_and_recall_keep_signets_shapes() {
    let t = spawn_app().await;
    let r = hook(&t, "remember", json!({ "harness": "claude-code" })).await;
    assert_eq!(r.body["error"], "harness and content are required");
    let body = json!({ "harness": "claude-code", "content": "critical: never force-push main", "idempotencyKey": "idem-1", "sessionKey": "r1" });
    let a = hook_ok(&t, "remember", body.clone()).await;
    assert_eq!(a["saved"], true);
    let id = a["id"].as_str().expect("id").to_string();
    let mut again = body.clone();
    again["content"] = json!("critical: never force-push main (said twice)");
    assert_eq!(hook_ok(&t, "remember", again).await["id"], id.as_str());
    let m = t.get(&format!("/api/memory/{id}")).await.body;
    assert_eq!(m["pinned"], 1);
    assert_eq!(m["who"], "claude-code");
    assert_eq!(m["type"], "rule");
    let r = hook_ok(
        &t,
        "recall",
        json!({ "harness": "claude-code", "query": "force-push main", "limit": 0 }),
    )
    .await;
    assert_eq!(r["count"], 1);
    let keys: Vec<&String> = r["results"][0].as_object().expect("row").keys().collect();
    assert_eq!(
        keys,
        vec!["content", "created_at", "id", "importance", "tags", "type"]
    );
    let r = hook(
        &t,
        "recall",
        json!({ "harness": "claude-code", "query": "x", "limit": "ten" }),
    )
    .await;
    assert_error(&r, 400);
    // The alias of Signet's `/api/hook/remember` answers like remember.
    let r = t
        .post(
            "/api/hook/remember",
            json!({ "content": "the wiki lives at wiki.corp" }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["embedded"].is_boolean() && r.body["type"] == "fact",
        "{:?}",
        r.body
    );
    t.stop().await;
}

#[tokio::test]
async fn sessions_routes_and_the_summaries_route_are_reachable() {
    let t = spawn_app().await;
    assert_eq!(
        t.get("/api/sessions").await.body,
        json!({ "count": 0, "sessions": [] })
    );
    let r = t.get("/api/sessions/unknown").await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (404, Some("Session not found"))
    );
    hook_ok(
        &t,
        "session-start",
        json!({ "harness": "codex", "sessionKey": "s9", "agentId": "bot", "project": "/p" }),
    )
    .await;
    let s = t.get("/api/sessions/s9").await.body;
    assert_eq!(s["key"], "s9");
    assert_eq!(s["runtimePath"], Value::Null);
    assert_eq!(s["harness"], "codex");
    assert_eq!(s["agentId"], "bot");
    let r = t.get("/api/sessions/summaries?limit=10").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({ "summaries": [], "total": 0 }));
    assert_error(&t.get("/api/sessions/summaries?limit=500").await, 400);
    assert_error(&t.get("/api/sessions/summaries?limit=abc").await, 400);
    // A second session of the project sees the first as a peer.
    let v = hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "sessionKey": "s10", "project": "/p" }),
    )
    .await;
    assert!(inject(&v).contains("## Active Peer Sessions\n\nOther Signet agent sessions are active right now:\n- bot (codex) project=/p session=s9 [seen just now]"), "{v}");
    t.stop().await;
}

#[tokio::test]
async fn malformed_hook_bodies_are_400_not_500() {
    let t = spawn_app().await;
    for name in [
        "session-start",
        "user-prompt-submit",
        "session-end",
        "remember",
        "recall",
        "pre-compaction",
        "compaction-complete",
    ] {
        let r = t
            .raw(
                "POST",
                &format!("/api/hooks/{name}"),
                Some(b"{not json".to_vec()),
            )
            .await;
        assert_eq!(r.status, 400, "{name}");
        let r = t
            .raw(
                "POST",
                &format!("/api/hooks/{name}"),
                Some(b"[1,2]".to_vec()),
            )
            .await;
        assert_eq!(r.status, 400, "{name}: {:?}", r.body);
        let r = hook(&t, name, json!({ "harness": 42 })).await;
        assert_eq!(r.status, 400, "{name}");
    }
    assert_eq!(t.get("/api/hooks/session-start").await.status, 405);
    t.stop().await;
}

/// An extraction provider that is never called (the summary worker would
/// fail against it, which these tests do not wait for).
fn with_provider(cfg: &mut Config) {
    cfg.settings.memory.pipeline_v2.extraction.provider = "ollama".into();
    cfg.settings.memory.pipeline_v2.extraction.endpoint = Some("http://127.0.0.1:9".into());
}

fn transcript_lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({ "type": if i % 2 == 0 { "user" } else { "assistant" },
                    "message": { "role": if i % 2 == 0 { "user" } else { "assistant" },
                                 "content": format!("turn {i}: we talked about the billing migration plan") } })
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn session_end_queues_a_summary_only_with_a_provider_and_a_readable_transcript() {
    // Without a provider nothing is read or queued.
    let t = spawn_app().await;
    let path = t.workspace.join("t.jsonl");
    std::fs::write(&path, transcript_lines(40)).expect("transcript");
    let v = hook_ok(
        &t,
        "session-end",
        json!({ "harness": "claude-code", "transcriptPath": path }),
    )
    .await;
    assert_eq!(v, json!({ "memoriesSaved": 0 }));
    t.stop().await;

    let t = spawn_with(with_provider).await;
    let path = t.workspace.join("t.jsonl");
    std::fs::write(&path, transcript_lines(40)).expect("transcript");
    hook_ok(
        &t,
        "session-start",
        json!({ "harness": "claude-code", "sessionKey": "e1" }),
    )
    .await;
    prompt(&t, "e1", "billing migration").await;
    let v = hook_ok(
        &t,
        "session-end",
        json!({ "harness": "claude-code", "sessionId": "e1", "transcriptPath": path, "cwd": "/repo" }),
    )
    .await;
    assert_eq!(v["queued"], true, "{v}");
    let job = v["jobId"].as_str().expect("jobId").to_string();
    let conn = rusqlite::Connection::open_with_flags(
        signet::store::db_path(&t.workspace),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let (project, transcript): (String, String) = conn
        .query_row(
            "SELECT project, transcript FROM summary_jobs WHERE id = ?1",
            [&job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("job row");
    assert_eq!(project, "/repo");
    assert!(
        transcript.starts_with("User: turn 0: we talked"),
        "{transcript}"
    );
    // A session with prompts leaves a session_end checkpoint.
    let r = t.get("/api/checkpoints/e1").await;
    assert_eq!(r.body["checkpoints"][0]["trigger"], "session_end");
    assert!(r.body["checkpoints"][0]["digest"]
        .as_str()
        .unwrap_or_default()
        .starts_with("## Session End Checkpoint"));

    // Too short: nothing queued.
    let short = t.workspace.join("short.jsonl");
    std::fs::write(&short, transcript_lines(2)).expect("transcript");
    let v = hook_ok(
        &t,
        "session-end",
        json!({ "harness": "claude-code", "transcriptPath": short }),
    )
    .await;
    assert!(v.get("queued").is_none(), "{v}");
    // Paths that are not a transcript under the workspace or home.
    let refused = [
        "relative/t.jsonl".to_string(),
        "/etc/passwd".to_string(),
        t.workspace.join("missing.jsonl").display().to_string(),
        t.workspace.join("agent.yaml").display().to_string(),
    ];
    std::fs::write(t.workspace.join("agent.yaml"), "x: 1").expect("yaml");
    for p in refused {
        let r = hook(
            &t,
            "session-end",
            json!({ "harness": "claude-code", "transcriptPath": p }),
        )
        .await;
        assert_eq!(r.status, 403, "{p}: {:?}", r.body);
    }
    t.stop().await;
}

#[tokio::test]
async fn team_mode_transcripts_outside_the_workspace_and_home_are_refused_even_through_a_symlink() {
    let outside = tempfile::tempdir().expect("dir");
    let secret = outside.path().join("notes.txt");
    std::fs::write(&secret, "x".repeat(2000)).expect("file");
    let t = spawn_with(|cfg| {
        team(cfg);
        with_provider(cfg);
    })
    .await;
    let tok = token(&t, Role::Agent, "agent-a", Default::default());
    let link = t.workspace.join("link.txt");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    for p in [secret.clone(), link] {
        let r = hook_as(
            &t,
            "session-end",
            json!({ "harness": "claude-code", "transcriptPath": p }),
            &tok,
        )
        .await;
        assert_eq!(r.status, 403, "{:?}", r.body);
    }
    let inside = t.workspace.join("t.txt");
    std::fs::write(&inside, "User: ".to_string() + &"hello ".repeat(200)).expect("file");
    let r = hook_as(
        &t,
        "session-end",
        json!({ "harness": "claude-code", "transcriptPath": inside }),
        &tok,
    )
    .await;
    assert_eq!(r.body["queued"], true, "{:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn team_mode_hooks_need_a_token_and_the_right_role() {
    let t = spawn_with(team).await;
    for name in [
        "session-start",
        "user-prompt-submit",
        "session-end",
        "remember",
        "recall",
        "pre-compaction",
        "compaction-complete",
    ] {
        let r = hook(&t, name, json!({ "harness": "x", "userPrompt": "a", "content": "a", "query": "a", "summary": "a" })).await;
        assert_eq!(r.status, 401, "{name}");
    }
    assert_eq!(t.get("/api/sessions").await.status, 401);
    let ro = token(&t, Role::Readonly, "reader", Default::default());
    let r = hook_as(
        &t,
        "remember",
        json!({ "harness": "x", "content": "a fact" }),
        &ro,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = hook_as(
        &t,
        "compaction-complete",
        json!({ "harness": "x", "summary": "s" }),
        &ro,
    )
    .await;
    assert_eq!(r.status, 403);
    // A reader may start sessions and search.
    let r = hook_as(&t, "session-start", json!({ "harness": "x" }), &ro).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = hook_as(
        &t,
        "user-prompt-submit",
        json!({ "harness": "x", "userPrompt": "hello world" }),
        &ro,
    )
    .await;
    assert_eq!(r.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn a_scoped_tokens_hooks_never_inject_another_projects_memory() {
    let t = spawn_with(team).await;
    let alpha = token(&t, Role::Agent, "alpha-bot", project("alpha"));
    let beta = token(&t, Role::Agent, "beta-bot", project("beta"));
    let root = admin(&t);
    for (p, text) in [
        ("alpha", "alpha deploys use the orange pipeline"),
        ("beta", "beta deploys use the purple pipeline"),
    ] {
        let r = call(
            &t,
            "POST",
            "/api/memory/remember",
            Some(json!({ "content": text, "project": p })),
            Some(&root),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let v = hook_as(
        &t,
        "session-start",
        json!({ "harness": "x", "sessionKey": "same" }),
        &alpha,
    )
    .await
    .body;
    assert!(
        inject(&v).contains("orange") && !inject(&v).contains("purple"),
        "{v}"
    );
    let v = hook_as(
        &t,
        "user-prompt-submit",
        json!({ "harness": "x", "sessionKey": "same", "userPrompt": "deploys pipeline" }),
        &beta,
    )
    .await
    .body;
    assert!(
        inject(&v).contains("purple") && !inject(&v).contains("orange"),
        "{v}"
    );
    let v = hook_as(
        &t,
        "recall",
        json!({ "harness": "x", "query": "deploys pipeline" }),
        &alpha,
    )
    .await
    .body;
    assert_eq!(v["count"], 1);
    let v = hook_as(&t, "pre-compaction", json!({ "harness": "x" }), &beta)
        .await
        .body;
    assert!(
        !v["summaryPrompt"]
            .as_str()
            .unwrap_or_default()
            .contains("orange"),
        "{v}"
    );
    // The same key in two scopes is two sessions; neither sees the other.
    let r = call(
        &t,
        "POST",
        "/api/sessions/same/bypass",
        Some(json!({ "enabled": true })),
        Some(&beta),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = hook_as(
        &t,
        "user-prompt-submit",
        json!({ "harness": "x", "sessionKey": "same", "userPrompt": "orange" }),
        &alpha,
    )
    .await
    .body;
    assert!(v.get("bypassed").is_none(), "{v}");
    let list = call(&t, "GET", "/api/sessions", None, Some(&alpha))
        .await
        .body;
    assert_eq!(list["count"], 1);
    assert_eq!(
        call(&t, "GET", "/api/sessions", None, Some(&root))
            .await
            .body["count"],
        2
    );
    // Checkpoints follow the writer's scope.
    for i in 0..10 {
        hook_as(
            &t,
            "user-prompt-submit",
            json!({ "harness": "x", "sessionKey": "cp-a", "userPrompt": format!("orange {i}") }),
            &alpha,
        )
        .await;
    }
    eventually("alpha checkpoint", || async {
        call(&t, "GET", "/api/checkpoints/cp-a", None, Some(&alpha))
            .await
            .body["count"]
            == 1
    })
    .await;
    assert_eq!(
        call(&t, "GET", "/api/checkpoints/cp-a", None, Some(&beta))
            .await
            .body["count"],
        0
    );
    t.stop().await;
}

#[tokio::test]
async fn a_session_token_is_scoped_like_its_parent_and_lives_a_day_at_most() {
    let t = spawn_with(team).await;
    let parent = token(&t, Role::Operator, "ops-bot", project("alpha"));
    let r = call(
        &t,
        "POST",
        "/api/auth/session-token",
        Some(json!({ "sessionKey": "h1" })),
        Some(&parent),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["role"], "agent");
    assert_eq!(r.body["sub"], "ops-bot");
    assert_eq!(r.body["scope"], json!({ "project": "alpha" }));
    let session = r.body["token"].as_str().expect("token").to_string();
    let who = call(&t, "GET", "/api/auth/whoami", None, Some(&session))
        .await
        .body;
    let claims = &who["claims"];
    // The parent lives an hour: so does its session token.
    let life = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert!(life <= 3600 && life > 3500, "{life}");
    let r = hook_as(
        &t,
        "remember",
        json!({ "harness": "x", "content": "session-scoped fact" }),
        &session,
    )
    .await;
    assert_eq!(r.status, 200);
    let id = r.body["id"].as_str().expect("id");
    let m = call(
        &t,
        "GET",
        &format!("/api/memory/{id}"),
        None,
        Some(&admin(&t)),
    )
    .await
    .body;
    assert_eq!(m["project"], "alpha");
    // A readonly parent gives a readonly token; no token, no session token.
    let ro = token(&t, Role::Readonly, "reader", Default::default());
    let r = call(
        &t,
        "POST",
        "/api/auth/session-token",
        Some(json!({})),
        Some(&ro),
    )
    .await;
    assert_eq!(r.body["role"], "readonly");
    assert_eq!(
        call(&t, "POST", "/api/auth/session-token", Some(json!({})), None)
            .await
            .status,
        401
    );
    // Revoking the parent's subject ends its session tokens.
    let r = call(
        &t,
        "POST",
        "/api/auth/revoke",
        Some(json!({ "sub": "ops-bot" })),
        Some(&admin(&t)),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = hook_as(
        &t,
        "recall",
        json!({ "harness": "x", "query": "fact" }),
        &session,
    )
    .await;
    assert_eq!(r.status, 401);
    t.stop().await;

    let t = spawn_app().await;
    let r = t.post("/api/auth/session-token", json!({})).await;
    assert_eq!(r.status, 400);
    t.stop().await;
}

/// A daemon with the native model (loaded) and one embedded memory about
/// release freezes; the prompt hook waits `wait_ms` for a new embedding.
async fn with_release_freeze_embedded(wait_ms: u64) -> TestApp {
    let t = spawn_with(|cfg| {
        cfg.settings.embedding.model_path = Some(model_dir().to_string_lossy().into_owned());
        cfg.settings.hooks.user_prompt_submit.vector_wait_ms = wait_ms;
    })
    .await;
    let start = Instant::now();
    while t.get("/api/embeddings/status").await.body["provider"]["state"] != "ready" {
        assert!(start.elapsed() < Duration::from_secs(60), "model not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = t
        .post(
            "/api/memory/remember",
            json!({ "content": "Production releases are frozen every Friday afternoon", "waitForEmbedding": true }),
        )
        .await;
    assert_eq!(r.body["embedded"], true, "{:?}", r.body);
    t
}

#[tokio::test]
async fn prompt_submit_with_embeddings_finds_a_paraphrase_and_says_hybrid() {
    // Wait for the model: a debug build may embed slower than 30 ms.
    let t = with_release_freeze_embedded(0).await;
    t.remember("The office plants need water on Mondays").await;
    let v = prompt(&t, "sem", "Can I ship to production on Friday afternoon?").await;
    assert_eq!(v["engine"], "hybrid", "{v}");
    assert!(inject(&v).contains("engine=hybrid"));
    assert!(inject(&v).contains("Production releases are frozen"), "{v}");
    t.stop().await;
}

#[tokio::test]
async fn a_prompt_the_model_has_not_seen_is_answered_by_keyword_within_the_wait_then_hybrid() {
    let t = with_release_freeze_embedded(1).await;
    let text = "Are production releases allowed on Friday afternoon?";
    let first = prompt(&t, "late", text).await;
    assert_eq!(first["engine"], "keyword", "{first}");
    assert!(
        inject(&first).contains("Production releases are frozen"),
        "{first}"
    );
    // The embedding finished in the background: the same prompt now runs
    // both legs.
    let start = Instant::now();
    for attempt in 0.. {
        // A fresh session each time: the repeat window would hide the memory.
        let v = prompt(&t, &format!("late-{attempt}"), text).await;
        if v["engine"] == "hybrid" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never hybrid: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.stop().await;
}

/// Run `signet hook <args>` with `stdin` against the daemon `t`; the exit
/// code, stdout and stderr.
async fn cli_hook(
    t: &TestApp,
    args: &[&str],
    stdin: Value,
    token: Option<&str>,
) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.arg("hook")
        .args(args)
        .env("SIGNET_DAEMON_URL", &t.base)
        .env_remove("SIGNET_TOKEN")
        .env_remove("SIGNET_API_KEY")
        .env_remove("SIGNET_NO_HOOKS")
        .env_remove("SIGNET_BYPASS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(tok) = token {
        cmd.env("SIGNET_TOKEN", tok);
    }
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn signet hook");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.to_string().as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn the_cli_hooks_drive_a_session_with_claude_code_shaped_events() {
    let t = spawn_with(with_provider).await;
    t.remember("The billing-service deploys with helm to the prod cluster")
        .await;
    let transcript = t.workspace.join("cli.jsonl");
    std::fs::write(&transcript, transcript_lines(40)).expect("transcript");
    let event = |extra: Value| {
        let mut e = json!({ "session_id": "cli-1", "cwd": "/src/app", "transcript_path": transcript,
                            "hook_event_name": "x" });
        if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        e
    };
    let (code, out, err) = cli_hook(
        &t,
        &[
            "session-start",
            "-H",
            "claude-code",
            "--project",
            "/src/app",
        ],
        event(json!({})),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("[memory active | /remember | /recall]"),
        "{out}"
    );
    assert!(
        out.contains("The billing-service deploys with helm"),
        "{out}"
    );
    let s = t.get("/api/sessions/cli-1").await.body;
    assert_eq!(
        (s["harness"].as_str(), s["project"].as_str()),
        (Some("claude-code"), Some("/src/app"))
    );

    let (code, out, err) = cli_hook(
        &t,
        &[
            "user-prompt-submit",
            "-H",
            "claude-code",
            "--project",
            "/src/app",
        ],
        event(json!({ "prompt": "how do we deploy the billing-service?" })),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(HDR), "{out}");
    assert!(
        out.contains("- The billing-service deploys with helm to the prod cluster ("),
        "{out}"
    );
    assert_eq!(t.get("/api/sessions/cli-1").await.body["prompts"], 1);

    // Signet's CLI rejects --project here; ours takes it.
    let (code, out, err) = cli_hook(
        &t,
        &[
            "pre-compaction",
            "-H",
            "claude-code",
            "--project",
            "/src/app",
        ],
        event(json!({})),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Pre-compaction memory flush. Store durable memories now."),
        "{out}"
    );

    let (code, out, err) = cli_hook(
        &t,
        &["session-end", "-H", "claude-code"],
        event(json!({ "reason": "exit" })),
        None,
    )
    .await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert_eq!(t.get("/api/sessions/cli-1").await.status, 404);
    let cps = t.get("/api/checkpoints/cli-1").await.body;
    let triggers: Vec<&str> = cps["checkpoints"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|c| c["trigger"].as_str())
        .collect();
    assert_eq!(triggers, vec!["session_end", "pre_compaction"]);
    let conn = rusqlite::Connection::open_with_flags(
        signet::store::db_path(&t.workspace),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let jobs: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM summary_jobs WHERE session_key = 'cli-1'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(jobs, 1);
    t.stop().await;
}

#[tokio::test]
async fn the_cli_hooks_send_the_token_and_never_break_the_harness() {
    let t = spawn_with(team).await;
    let tok = token(&t, Role::Agent, "cli-agent", project("alpha"));
    let root = admin(&t);
    let r = call(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "alpha uses the orange pipeline", "project": "alpha" })),
        Some(&root),
    )
    .await;
    assert_eq!(r.status, 200);
    let e = json!({ "session_id": "tm", "cwd": "/w", "prompt": "which pipeline does alpha use" });
    let (code, out, err) = cli_hook(&t, &["user-prompt-submit"], e.clone(), Some(&tok)).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alpha uses the orange pipeline"), "{out}");
    // No token: nothing on stdout, one line on stderr, exit 0.
    let (code, out, err) = cli_hook(&t, &["user-prompt-submit"], e.clone(), None).await;
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(
        err.starts_with("[signet] hook user-prompt-submit failed: HTTP 401"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    t.stop().await;
}
