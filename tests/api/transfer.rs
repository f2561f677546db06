//! Bulk export and import (`signet export`, `signet import`,
//! `POST /api/memory/import`) and the migration of a real Signet 0.58.1
//! database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use signet::auth::Role;
use signet::config::Config;

use crate::helpers::*;

/// A database written by Signet 0.58.1 itself (see its README).
const FIXTURE: &str = "tests/fixtures/signet-0.58.1";

fn native(cfg: &mut Config) {
    cfg.settings.embedding.model_path = Some(model_dir().to_string_lossy().into_owned());
}

/// Run the CLI on `workspace` (and the daemon at `daemon`, if any).
async fn cli(workspace: &Path, daemon: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.args(args)
        .env("SIGNET_PATH", workspace)
        .env_remove("SIGNET_TOKEN")
        .env_remove("SIGNET_API_KEY")
        .env_remove("SIGNET_DAEMON_URL");
    if let Some(url) = daemon {
        cmd.env("SIGNET_DAEMON_URL", url);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("signet runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}"))
}

/// An empty workspace whose config loads the test model and fetches
/// nothing.
fn empty_workspace(dir: &Path) -> PathBuf {
    let ws = dir.to_path_buf();
    std::fs::write(
        ws.join("agent.yaml"),
        format!(
            "embedding:\n  modelPath: {}\n  autoFetch: false\n",
            model_dir().display()
        ),
    )
    .expect("write agent.yaml");
    ws
}

async fn wait_embedded(t: &TestApp) {
    let t0 = std::time::Instant::now();
    loop {
        let s = t.get("/api/embeddings/status").await.body;
        if s["pending"] == 0 && s["coverage"] == 1.0 && s["provider"]["state"] == "ready" {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "never embedded: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_an_empty_workspace_gives_the_same_bytes() {
    let t = spawn_with(native).await;
    let keep = t
        .post(
            "/api/memory/remember",
            json!({"content": "The deploy freeze starts on Friday at noon", "tags": "ops,deploy",
                   "pinned": true, "project": "infra", "who": "ann"}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let edited = t.remember("Kofi prefers tea over coffee").await;
    let gone = t.remember("a note nobody needs").await;
    let r = patch(
        &t,
        &edited,
        json!({"content": "Kofi prefers green tea over coffee", "reason": "more precise"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    delete(&t, &gone).await;
    wait_embedded(&t).await;

    // Exported while the daemon runs (a read-only snapshot).
    let dir = tempfile::tempdir().expect("dir");
    let a = dir.path().join("a.ndjson");
    let (code, _, err) = cli(
        &t.workspace,
        None,
        &["export", "--out", a.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported 3 memories"), "{err}");
    let text_a = std::fs::read_to_string(&a).expect("export");
    let rows = lines(&text_a);
    assert_eq!(rows.len(), 3);
    let by_id = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .expect("exported")
            .clone()
    };
    let k = by_id(&keep);
    assert_eq!(
        (k["pinned"].clone(), k["tags"].clone()),
        (json!(true), json!("ops,deploy"))
    );
    assert_eq!(k["embedding"]["dimensions"], 384);
    assert_eq!(k["embedding"]["model"], "all-MiniLM-L6-v2");
    let e = by_id(&edited);
    assert_eq!(e["version"], 2);
    let events: Vec<&str> = e["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["event"].as_str().expect("event"))
        .collect();
    assert_eq!(events, ["created", "updated"]);
    assert_eq!(e["history"][1]["reason"], "more precise");
    let g = by_id(&gone);
    assert_eq!(
        (g["is_deleted"].clone(), g["embedding"].clone()),
        (json!(true), Value::Null)
    );

    // Into an empty workspace with no daemon: directly on the store.
    let d2 = tempfile::tempdir().expect("dir");
    let w2 = empty_workspace(d2.path());
    let (code, out, err) = cli(&w2, None, &["import", a.to_str().expect("utf-8")]).await;
    assert_eq!(code, 0, "{out}{err}");
    let rep = report(&out);
    assert_eq!(rep["via"], "direct", "{rep}");
    assert_eq!(rep["report"]["imported"], 3, "{rep}");
    assert_eq!(
        rep["report"]["vectors"], 2,
        "the given vectors are used: {rep}"
    );
    assert_eq!(rep["report"]["queued"], 0, "{rep}");
    let b = dir.path().join("b.ndjson");
    let (code, _, err) = cli(&w2, None, &["export", "--out", b.to_str().expect("utf-8")]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&b).expect("export"),
        text_a,
        "export → import → export"
    );

    // Into an empty workspace through its running daemon: recall finds the
    // imported memories by meaning at once (the vectors are in its index).
    let t3 = spawn_with(native).await;
    let (code, out, err) = cli(
        &t3.workspace,
        Some(&t3.base),
        &["import", a.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let rep = report(&out);
    assert_eq!(rep["via"], "daemon", "{rep}");
    assert_eq!(rep["report"]["imported"], 3, "{rep}");
    wait_embedded(&t3).await;
    let hits = recall_ok(
        &t3,
        json!({"query": "which hot drink does Kofi like", "limit": 3}),
        None,
    )
    .await;
    assert_eq!(hits["results"][0]["id"], edited.as_str(), "{hits}");
    assert_ne!(hits["results"][0]["source"], "keyword", "{hits}");
    let got = t3
        .get(&format!("/api/memory/{gone}?include_deleted=true"))
        .await;
    assert_eq!(
        (got.body["is_deleted"].clone(), got.body["version"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(history(&t3, &edited).await.len(), 2);
    let c = dir.path().join("c.ndjson");
    let (code, _, err) = cli(
        &t3.workspace,
        None,
        &["export", "--out", c.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&c).expect("export"), text_a);
    // A second import changes nothing: every id is there.
    let (code, out, _) = cli(
        &t3.workspace,
        Some(&t3.base),
        &["import", a.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, 0);
    let rep = report(&out);
    assert_eq!(
        (
            rep["report"]["imported"].clone(),
            rep["report"]["existing"].clone()
        ),
        (json!(0), json!(3))
    );
    t.stop().await;
    t3.stop().await;
}

/// A memory as the Signet fixture holds it.
struct SignetRow {
    id: String,
    content: String,
    kind: String,
    version: i64,
    deleted: i64,
    pinned: i64,
    project: Option<String>,
    tags: Option<String>,
    who: Option<String>,
    created: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signet_database_is_migrated_with_its_history_and_versions() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    // A copy (opening a WAL database, even read-only, leaves -shm and -wal
    // files beside it; not in the source tree).
    let copy = tempfile::tempdir().expect("dir");
    let db = copy.path().join("memories.db");
    std::fs::copy(fixture.join("memories.db"), &db).expect("copy the fixture");
    let before = std::fs::read(&db).expect("fixture");
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("summary.json")).expect("summary"),
    )
    .expect("json");
    let t = spawn_with(|c| c.settings.embedding.provider = "none".into()).await;
    let (code, out, err) = cli(
        &t.workspace,
        Some(&t.base),
        &["import", "--from-signet", db.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let rep = report(&out);
    assert_eq!(rep["via"], "daemon");
    assert_eq!(rep["report"]["imported"], summary["memories"], "{rep}");
    assert_eq!(
        rep["signet"]["vectorsByModel"]["all-minilm"], summary["embeddings"],
        "{rep}"
    );
    let skipped = rep["skipped"].to_string();
    assert!(skipped.contains("vectors of all-minilm not used"), "{rep}");
    assert_eq!(
        std::fs::read(&db).expect("fixture"),
        before,
        "the source is never written"
    );

    // Counts against the fixture's summary.
    let all = t.get("/api/memories?limit=1").await.body;
    assert_eq!(all["stats"]["total"], summary["live"]);
    assert_eq!(
        t.get("/api/memories?limit=1&pinned=true").await.body["count"],
        summary["pinned_live"]
    );
    // Every memory, field by field, against the Signet rows.
    let src =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let mut stmt = src
        .prepare("SELECT id, content, type, version, is_deleted, pinned, project, tags, who, created_at FROM memories")
        .expect("prepare");
    let rows: Vec<SignetRow> = stmt
        .query_map([], |r| {
            Ok(SignetRow {
                id: r.get(0)?,
                content: r.get(1)?,
                kind: r.get(2)?,
                version: r.get(3)?,
                deleted: r.get(4)?,
                pinned: r.get(5)?,
                project: r.get(6)?,
                tags: r.get(7)?,
                who: r.get(8)?,
                created: r.get(9)?,
            })
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut events: std::collections::BTreeMap<String, i64> = Default::default();
    let mut max_version = 0;
    let mut by_project: std::collections::BTreeMap<String, i64> = Default::default();
    for SignetRow {
        id,
        content,
        kind,
        version,
        deleted,
        pinned,
        project,
        tags,
        who,
        created,
    } in rows
    {
        let m = t
            .get(&format!("/api/memory/{id}?include_deleted=true"))
            .await;
        assert_eq!(m.status, 200, "{id}");
        let m = m.body;
        assert_eq!(m["content"], content.as_str());
        assert_eq!(m["type"], kind.as_str());
        assert_eq!(m["version"], version);
        assert_eq!(m["is_deleted"], deleted);
        assert_eq!(m["pinned"], pinned);
        assert_eq!(m["project"], json!(project));
        assert_eq!(m["tags"], json!(tags));
        assert_eq!(m["who"], json!(who));
        assert_eq!(m["created_at"], created.as_str());
        max_version = max_version.max(version);
        *by_project
            .entry(project.unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        let h = history(&t, &id).await;
        let n: i64 = src
            .query_row(
                "SELECT COUNT(*) FROM memory_history WHERE memory_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(h.len() as i64, n, "history of {id}");
        for e in h {
            *events
                .entry(e["event"].as_str().expect("event").to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(json!(events), summary["history_events"]);
    assert_eq!(json!(max_version), summary["max_version"]);
    assert_eq!(json!(by_project), summary["by_project"]);
    // A migrated memory is found by recall like any other.
    let first = src
        .query_row(
            "SELECT content FROM memories WHERE is_deleted = 0 ORDER BY created_at LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .expect("row");
    let hits = recall_ok(&t, json!({"query": first, "limit": 3}), None).await;
    assert_eq!(hits["results"][0]["content"], first.as_str(), "{hits}");
    t.stop().await;

    // A file that is not a Signet database is refused with a reason.
    let d = tempfile::tempdir().expect("dir");
    let bogus = d.path().join("x.db");
    std::fs::write(&bogus, b"not sqlite").expect("write");
    let (code, _, err) = cli(
        d.path(),
        None,
        &["import", "--from-signet", bogus.to_str().expect("utf-8")],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("x.db"), "{err}");
}

fn vector_b64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn import_body(t: &TestApp, body: String, tok: Option<&str>) -> Resp {
    let mut req = t.client.post(t.url("/api/memory/import")).body(body);
    if let Some(tok) = tok {
        req = req.bearer_auth(tok);
    }
    into_resp(req.send().await.expect("send")).await
}

#[tokio::test]
async fn bad_lines_are_refused_with_their_number_and_the_rest_imported() {
    let t = spawn_app().await;
    let good = json!({"id": "m-1", "content": "the build cache lives on the NAS"});
    let wrong_dims = json!({"id": "m-2", "content": "a vector of the wrong size",
        "embedding": {"model": "all-MiniLM-L6-v2", "dimensions": 3, "vector": vector_b64(&[0.1, 0.2, 0.3])}});
    let says_other = json!({"id": "m-3", "content": "a vector that lies about its size",
        "embedding": {"model": "x", "dimensions": 4, "vector": vector_b64(&[0.1, 0.2, 0.3])}});
    let other_model = json!({"id": "m-4", "content": "a vector of another model",
        "embedding": {"model": "other-model", "dimensions": 3, "vector": vector_b64(&[0.1, 0.2, 0.3])}});
    let body = format!(
        "{good}\n\n{{not json\n{wrong_dims}\n{says_other}\n{}\n{other_model}\n{good}",
        json!({"content": ""})
    );
    let r = import_body(&t, body, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rep = &r.body;
    assert_eq!(rep["imported"], 2, "{rep}");
    assert_eq!(rep["existing"], 1, "the repeated line: {rep}");
    assert_eq!(rep["refused"], 4, "{rep}");
    // The plain line and the one with another model's vector are embedded
    // here instead.
    assert_eq!(rep["queued"], 2, "{rep}");
    let errors = rep["errors"].as_array().expect("errors");
    let line_of = |n: u64| {
        errors
            .iter()
            .find(|e| e["line"] == n)
            .map(|e| e["error"].as_str().unwrap_or("").to_string())
    };
    assert!(
        line_of(3).is_some_and(|e| e.contains("not a memory line")),
        "{rep}"
    );
    assert!(
        line_of(4).is_some_and(|e| e.contains("3 dimensions") && e.contains("384")),
        "{rep}"
    );
    assert!(
        line_of(5).is_some_and(|e| e.contains("says 4 dimensions")),
        "{rep}"
    );
    assert!(
        line_of(6).is_some_and(|e| e.contains("content is empty")),
        "{rep}"
    );
    assert_eq!(
        t.get("/api/memory/m-2?include_deleted=true").await.status,
        404,
        "a refused line leaves nothing"
    );
    assert_eq!(t.get("/api/memory/m-1").await.status, 200);
    // A duplicate of a live memory is skipped like a remember's.
    let r = import_body(
        &t,
        json!({"id": "m-9", "content": "The build cache lives on the NAS."}).to_string(),
        None,
    )
    .await;
    assert_eq!(r.body["duplicates"], 1, "{}", r.body);
    // A line over the body limit is a 413 the client can read.
    let t2 = spawn_with(|c| c.settings.server.max_body_bytes = 4096).await;
    let big = json!({"content": "x".repeat(10_000)}).to_string();
    let r = import_body(&t2, format!("{good}\n{big}\n"), None).await;
    assert_error(&r, 413);
    t.stop().await;
    t2.stop().await;
}

#[tokio::test]
async fn import_is_for_admins_rate_limited_and_frozen_with_the_kill_switch() {
    let t = spawn_with(|c| {
        team(c);
        c.settings.auth.rate_limits.admin = limit(1);
    })
    .await;
    let line = |i: u32| json!({"content": format!("imported line {i}")}).to_string();
    for role in [Role::Agent, Role::Operator, Role::Readonly] {
        let tok = token(&t, role, "someone", Default::default());
        let r = import_body(&t, line(0), Some(&tok)).await;
        assert_error(&r, 403);
    }
    assert_error(&import_body(&t, line(0), None).await, 401);
    let adm = admin(&t);
    let r = import_body(&t, line(1), Some(&adm)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["imported"], 1);
    let r = import_body(&t, line(2), Some(&adm)).await;
    assert_error(&r, 429);
    assert_eq!(
        get_as(&t, "/api/memories?limit=1", &adm).await.body["count"],
        1
    );
    t.stop().await;

    let t = spawn_with(|c| c.settings.memory.pipeline_v2.mutations_frozen = true).await;
    let r = import_body(&t, line(3), None).await;
    assert_error(&r, 503);
    assert_eq!(t.get("/api/memories?limit=1").await.body["count"], 0);
    t.stop().await;
}
