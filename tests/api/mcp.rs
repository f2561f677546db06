//! MCP: the transport rules of `/mcp` (Signet's status codes) as black-box
//! HTTP, and a real MCP client (the official Python SDK) over both
//! transports, in local and team mode.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use signet::auth::Role;
use signet::store::Scope;

use crate::helpers::*;

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");

/// POST a JSON-RPC message to `/mcp` with the headers a client sends.
async fn rpc(t: &TestApp, msg: Value, token: Option<&str>) -> Resp {
    request(t, "POST", "/mcp", Some(msg), token, &[ACCEPT]).await
}

/// A raw request to `/mcp`: status, content type and body text.
async fn raw_mcp(
    t: &TestApp,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = t.client.request(m, t.url("/mcp")).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.text().await.expect("body"))
}

fn init(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

/// In team mode `initialize` without a token is refused by the transport.
async fn assert_refused_without_token(t: &TestApp) {
    let (s, _, body) = raw_mcp(
        t,
        "POST",
        &[ACCEPT, ("content-type", "application/json")],
        &init("2025-06-18").to_string(),
    )
    .await;
    assert_eq!(s, 401, "{body}");
}

fn tool_call(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": args}})
}

#[tokio::test]
async fn initialize_negotiates_the_version_and_names_the_server() {
    let t = spawn_app().await;
    let r = rpc(&t, init("2025-06-18"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let res = &r.body["result"];
    assert_eq!(res["protocolVersion"], "2025-06-18");
    assert_eq!(
        res["serverInfo"],
        json!({"name": "signet", "version": "0.1.0"})
    );
    assert_eq!(res["capabilities"]["tools"]["listChanged"], true);
    // A version the server does not speak: its newest.
    let r = rpc(&t, init("1999-01-01"), None).await;
    assert_eq!(r.body["result"]["protocolVersion"], "2025-11-25");
    // Stateless: no session id, and calls need no initialize first.
    assert!(r.headers.get("mcp-session-id").is_none());
    let r = rpc(
        &t,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        None,
    )
    .await;
    let names: Vec<&str> = r.body["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, signet::mcp::TOOL_NAMES);
    t.stop().await;
}

#[tokio::test]
async fn the_transport_answers_signets_status_codes() {
    let t = spawn_app().await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let json_ct = ("content-type", "application/json");
    // 406: Accept without both types.
    for accept in ["application/json", "text/event-stream", "*/*"] {
        let (s, ct, body) = raw_mcp(&t, "POST", &[("accept", accept), json_ct], ping).await;
        assert_eq!(s, 406, "{accept}: {body}");
        assert!(ct.starts_with("application/json"), "{ct}");
        let v: Value = serde_json::from_str(&body).expect("json-rpc body");
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (Value::Null, json!(-32000))
        );
    }
    // 415: not JSON.
    let (s, _, body) = raw_mcp(&t, "POST", &[ACCEPT, ("content-type", "text/plain")], ping).await;
    assert_eq!(s, 415, "{body}");
    // 400 -32700: bad JSON.
    let (s, _, body) = raw_mcp(&t, "POST", &[ACCEPT, json_ct], "{\"jsonrpc\":").await;
    assert_eq!(s, 400, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], -32700);
    // 400: an unsupported protocol version header.
    let (s, _, body) = raw_mcp(
        &t,
        "POST",
        &[ACCEPT, json_ct, ("mcp-protocol-version", "2026-07-28")],
        ping,
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("Unsupported protocol version"), "{body}");
    // A supported one is fine.
    let (s, ct, body) = raw_mcp(
        &t,
        "POST",
        &[ACCEPT, json_ct, ("mcp-protocol-version", "2025-03-26")],
        ping,
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "application/json"), "{body}");
    // 202: only notifications.
    let (s, _, body) = raw_mcp(
        &t,
        "POST",
        &[ACCEPT, json_ct],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!((s, body.as_str()), (202, ""));
    // A batch: an array of answers, one per request.
    let (s, ct, body) = raw_mcp(
        &t,
        "POST",
        &[ACCEPT, json_ct],
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#,
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "application/json"), "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let ids: Vec<Value> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2)], "{body}");
    assert_eq!(v[1]["result"]["tools"].as_array().map(Vec::len), Some(7));
    // A batch of notifications only: 202.
    let (s, _, body) = raw_mcp(
        &t,
        "POST",
        &[ACCEPT, json_ct],
        r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
    )
    .await;
    assert_eq!((s, body.as_str()), (202, ""));
    // GET: an event stream that ends at once; DELETE: 200; others: 405.
    let (s, ct, body) = raw_mcp(&t, "GET", &[("accept", "text/event-stream")], "").await;
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (200, "text/event-stream", "")
    );
    let (s, _, _) = raw_mcp(&t, "DELETE", &[], "").await;
    assert_eq!(s, 200);
    for m in ["PUT", "PATCH"] {
        let (s, _, body) = raw_mcp(&t, m, &[json_ct], ping).await;
        assert_eq!(s, 405, "{m}: {body}");
    }
    // A body over the limit: 413 (not 405 from the other-methods branch).
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(2 << 20)
    );
    let (s, _, _) = raw_mcp(&t, "POST", &[ACCEPT, json_ct], &big).await;
    assert_eq!(s, 413);
    t.stop().await;
}

#[tokio::test]
async fn tool_refusals_are_error_results_and_unknown_tools_too() {
    let t = spawn_app().await;
    let r = rpc(
        &t,
        tool_call(1, "memory_get", json!({"id": "missing"})),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let res = &r.body["result"];
    assert_eq!(res["isError"], true);
    assert_eq!(res["structuredContent"]["code"], 404);
    assert_eq!(
        res["content"][0]["text"],
        r#"Get failed: {"error":"not found"}"#
    );
    let r = rpc(&t, tool_call(2, "memory_launch", json!({})), None).await;
    assert_eq!(r.body["result"]["isError"], true, "{}", r.body);
    let r = rpc(&t, tool_call(3, "memory_search", json!({"query": 7})), None).await;
    let text = r.body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert!(
        text.starts_with("MCP error -32602: Input validation error"),
        "{text}"
    );
    // Pinned memories are not forced by MCP (it sends no force): 409.
    let id = t
        .remember("critical: never rotate the root key by hand")
        .await;
    let r = rpc(
        &t,
        tool_call(4, "memory_forget", json!({"id": id, "reason": "cleanup"})),
        None,
    )
    .await;
    assert_eq!(
        r.body["result"]["structuredContent"]["code"], 409,
        "{}",
        r.body
    );
    t.stop().await;
}

#[tokio::test]
async fn team_mode_needs_a_token_and_admits_each_call_through_the_domain() {
    let t = spawn_with(|c| {
        team(c);
        c.settings.auth.rate_limits.forget = limit(1);
    })
    .await;
    assert_refused_without_token(&t).await;
    let agent = token(&t, Role::Agent, "mcp-agent", Scope::default());
    let a = rpc(
        &t,
        tool_call(1, "memory_store", json!({"content": "first note"})),
        Some(&agent),
    )
    .await;
    let b = rpc(
        &t,
        tool_call(2, "memory_store", json!({"content": "second note"})),
        Some(&agent),
    )
    .await;
    let id = |r: &Resp| {
        r.body["result"]["structuredContent"]["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let (a, b) = (id(&a), id(&b));
    // The forget limit (1 a minute) counts MCP calls like HTTP ones.
    let f = |id: String, n: u64| tool_call(n, "memory_forget", json!({"id": id, "reason": "done"}));
    let r = rpc(&t, f(a, 3), Some(&agent)).await;
    assert_eq!(r.body["result"]["isError"], false, "{}", r.body);
    let r = rpc(&t, f(b, 4), Some(&agent)).await;
    assert_eq!(
        r.body["result"]["structuredContent"]["code"], 429,
        "{}",
        r.body
    );
    // The audit trail names the token's subject.
    let ro = token(&t, Role::Readonly, "reader", Scope::default());
    let r = rpc(
        &t,
        tool_call(5, "memory_store", json!({"content": "nope"})),
        Some(&ro),
    )
    .await;
    assert_eq!(
        r.body["result"]["structuredContent"]["code"], 403,
        "{}",
        r.body
    );
    t.stop().await;
}

/// The Python interpreter with the `mcp` SDK: `SIGNET_TEST_PYTHON`, else
/// the venv `.ci/run` makes in `target/mcp-venv`.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIGNET_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python");
    let ok = venv.exists()
        && Command::new(&venv)
            .args(["-c", "import mcp.client"])
            .output()
            .is_ok_and(|o| o.status.success());
    ok.then_some(venv)
}

/// Run one scenario of `tests/clients/mcp_client.py`; `None` when no
/// client is installed (CI sets `SIGNET_REQUIRE_MCP_CLIENT`, so it fails).
async fn client(args: Vec<String>) -> Option<String> {
    let Some(py) = python() else {
        assert!(
            std::env::var_os("SIGNET_REQUIRE_MCP_CLIENT").is_none(),
            "the Python MCP SDK is required (python -m venv target/mcp-venv && target/mcp-venv/bin/pip install mcp)"
        );
        eprintln!("skipped: no Python MCP SDK (target/mcp-venv)");
        return None;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/mcp_client.py");
    let run = args.clone();
    let out = tokio::task::spawn_blocking(move || Command::new(py).arg(script).args(&run).output())
        .await
        .expect("join")
        .expect("run the MCP client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "MCP client {args:?} failed:\n{text}");
    Some(text)
}

fn args(t: &TestApp, transport: &str, scenario: &str, extra: &[&str]) -> Vec<String> {
    let url = match transport {
        "http" => t.url("/mcp"),
        _ => t.base.clone(),
    };
    let mut v: Vec<String> = [
        "--transport",
        transport,
        "--url",
        &url,
        "--scenario",
        scenario,
        "--bin",
        env!("CARGO_BIN_EXE_signet"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[tokio::test]
async fn the_python_sdk_uses_every_tool_over_http_and_stdio() {
    let t = spawn_app().await;
    for (transport, mode) in [("http", "auto"), ("http", "legacy"), ("stdio", "auto")] {
        let Some(out) = client(args(&t, transport, "basic", &["--mode", mode])).await else {
            break;
        };
        assert!(out.contains("ok: basic"), "{out}");
    }
    t.stop().await;
}

#[tokio::test]
async fn the_python_sdk_in_team_mode_sees_only_its_scope_and_role() {
    let t = spawn_with(team).await;
    let admin = admin(&t);
    // A memory of another project, stored by an admin over HTTP.
    let r = request(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({"content": "platypus secret launch codes", "project": "beta"})),
        Some(&admin),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let other = r.body["id"].as_str().expect("id").to_string();
    // Without a token the transport itself is refused (the client's
    // "no-token" run below must fail on exactly this).
    assert_refused_without_token(&t).await;
    let agent = token(&t, Role::Agent, "alpha-agent", project("alpha"));
    let reader = token(&t, Role::Readonly, "reader", Scope::default());
    for transport in ["http", "stdio"] {
        let scoped = args(
            &t,
            transport,
            "scoped",
            &["--token", &agent, "--other-id", &other],
        );
        if client(scoped).await.is_none() {
            break;
        }
        client(args(&t, transport, "readonly", &["--token", &reader])).await;
        let out = client(args(&t, transport, "no-token", &[])).await;
        assert!(out.is_some_and(|o| o.contains("ok: no-token")));
    }
    // The other project's memory is untouched.
    let r = request(
        &t,
        "GET",
        &format!("/api/memory/{other}"),
        None,
        Some(&admin),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.body["version"].clone()),
        (200, json!(1)),
        "{:?}",
        r.body
    );
    t.stop().await;
}
