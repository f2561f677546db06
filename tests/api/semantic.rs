//! Black-box tests of semantic recall (SPEC §6 and §7): retrieval quality
//! of the native model against keyword search, the vector leg honouring
//! deletion, scope and filters, `/memory/similar`, `waitForEmbedding`,
//! re-embedding after a content change, and remote providers that are
//! down, refuse connections or answer vectors of the wrong dimension (a
//! real HTTP stub speaking the OpenAI embeddings protocol). Each test
//! starts real daemons on port 0 over temp workspaces and talks to them
//! over HTTP only.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signet::auth::Role;
use signet::config::Config;
use signet::store::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    call, model_dir, project, recall_ok, remember_content, remember_new, spawn_with, team, token,
    Resp, TestApp,
};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Longest wait for the background backfill.
const BACKFILL_WAIT: Duration = Duration::from_secs(60);

/// The native model from `target/models`, no recall result cache.
fn native(cfg: &mut Config) {
    cfg.settings.embedding.provider = "native".into();
    cfg.settings.embedding.model_path = Some(model_dir().to_string_lossy().into_owned());
    cfg.settings.server.recall_cache_entries = 0;
}

/// The OpenAI-compatible provider at `url`, 384 dimensions, no recall
/// result cache, short provider timeout.
fn openai(cfg: &mut Config, url: &str) {
    cfg.settings.embedding.provider = "openai".into();
    cfg.settings.embedding.endpoint = Some(url.to_string());
    cfg.settings.embedding.model = "stub-embed".into();
    cfg.settings.embedding.dimensions = 384;
    cfg.settings.embedding.api_key = Some("test-key".into());
    cfg.settings.embedding.timeout_ms = 1_500;
    cfg.settings.embedding.wait_timeout_ms = 1_500;
    cfg.settings.server.recall_cache_entries = 0;
}

/// Recall of `query` with `limit`.
async fn recall_q(t: &TestApp, query: &str, limit: usize) -> Value {
    recall_ok(t, json!({ "query": query, "limit": limit }), None).await
}

/// The ids of `body[key]` in order.
fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no '{key}' array in {body}"))
        .iter()
        .map(|r| r["id"].as_str().expect("result id").to_string())
        .collect()
}

/// The result for `id` in `body.results`, if any.
fn result_of<'a>(body: &'a Value, id: &str) -> Option<&'a Value> {
    body["results"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["id"] == id))
}

/// Compact view of results for failure messages.
fn show(body: &Value) -> String {
    let rs = body["results"].as_array().cloned().unwrap_or_default();
    let items: Vec<String> = rs
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {:?}",
                r["id"].as_str().unwrap_or("?"),
                r["score"],
                r["source"],
                r["content"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!("method={} [{}]", body["method"], items.join(" | "))
}

/// `GET /api/embeddings/status`.
async fn embed_status(t: &TestApp, tok: Option<&str>) -> Value {
    let r = call(t, "GET", "/api/embeddings/status", None, tok).await;
    assert_eq!(r.status, 200, "embeddings status: {:?}", r.body);
    r.body
}

/// Poll the embeddings status until `done` holds, at most `limit`;
/// panics with `what` and the last status otherwise.
async fn wait_status(
    t: &TestApp,
    tok: Option<&str>,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let s = embed_status(t, tok).await;
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not reached within {limit:?}; last /api/embeddings/status: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the backfill embedded every live memory (and the in-memory
/// index holds their vectors).
async fn wait_backfill(t: &TestApp, tok: Option<&str>) -> Value {
    wait_backfill_within(t, tok, BACKFILL_WAIT).await
}

/// [`wait_backfill`] with a shorter bound.
async fn wait_backfill_within(t: &TestApp, tok: Option<&str>, limit: Duration) -> Value {
    wait_status(t, tok, limit, "backfill to finish (pending 0)", |s| {
        s["provider"]["state"] == "ready"
            && s["pending"].as_i64() == Some(0)
            && s["index"]["vectors"].as_i64() >= s["embedded"].as_i64()
    })
    .await
}

/// Wait until the provider is loaded.
async fn wait_ready(t: &TestApp) {
    wait_status(t, None, BACKFILL_WAIT, "provider to be ready", |s| {
        s["provider"]["state"] == "ready"
    })
    .await;
}

/// Wait until no recent provider failure keeps recall off the vector leg
/// (the 5 s circuit closed), so the next recall calls the provider.
async fn wait_circuit_closed(t: &TestApp) {
    wait_status(
        t,
        None,
        Duration::from_secs(25),
        "the failure circuit to close",
        |s| s["provider"]["available"] == true,
    )
    .await;
}

/// A recall while the circuit is closed: it asks the failing provider,
/// answers fast, keyword-only, with the keyword match.
async fn recall_through_a_failing_provider(t: &TestApp, query: &str, want: &str) {
    wait_circuit_closed(t).await;
    let started = Instant::now();
    let r = recall_q(t, query, 5).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "recall with a failing provider took {:?}",
        started.elapsed()
    );
    assert_eq!(r["method"], "keyword", "{}", show(&r));
    assert_eq!(ids(&r, "results"), vec![want.to_string()], "{}", show(&r));
    let s = embed_status(t, None).await;
    assert_eq!(
        s["provider"]["available"], false,
        "the failed query call opened the circuit: {s}"
    );
}

/// `/memory/similar` (or its `/api` alias) as `tok`.
async fn similar(t: &TestApp, query: &str, tok: Option<&str>) -> Resp {
    call(t, "GET", &format!("/memory/similar?{query}"), None, tok).await
}

fn scores(body: &Value) -> Vec<f64> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["score"].as_f64().expect("score"))
        .collect()
}

fn non_increasing(v: &[f64]) -> bool {
    v.windows(2).all(|w| w[0] >= w[1])
}

// --- the embeddings stub ----------------------------------------------------

/// A real HTTP/1.1 server speaking OpenAI's `POST /v1/embeddings`: each
/// text's vector counts its words hashed into `dims` buckets (texts that
/// share words are similar). `fail` makes it answer 500.
struct Stub {
    url: String,
    fail: Arc<AtomicBool>,
    /// Embedding requests received (failed ones included).
    requests: Arc<AtomicUsize>,
    /// Every embedding request: (method, path, JSON body).
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct StubState {
    dims: usize,
    fail: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
}

/// The stub's deterministic embedding of `text`.
fn hashed_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0.0_f32; dims];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        // FNV-1a
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in w.to_lowercase().bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        v[(h % dims as u64) as usize] += 1.0;
    }
    if v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

impl Stub {
    async fn start(dims: usize, failing: bool) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("stub bind");
        let url = format!("http://{}", listener.local_addr().expect("stub addr"));
        let st = StubState {
            dims,
            fail: Arc::new(AtomicBool::new(failing)),
            requests: Arc::new(AtomicUsize::new(0)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let s2 = st.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(stub_conn(sock, s2.clone()));
            }
        });
        Stub {
            url,
            fail: st.fail,
            requests: st.requests,
            seen: st.seen,
            task,
        }
    }

    fn last(&self) -> Option<(String, String, Value)> {
        self.seen.lock().expect("stub lock").last().cloned()
    }

    /// Whether a request embedded exactly `texts`.
    fn saw_input(&self, texts: &[&str]) -> bool {
        self.seen
            .lock()
            .expect("stub lock")
            .iter()
            .any(|(_, _, b)| b["input"] == json!(texts))
    }
}

/// Serve the requests of one (keep-alive) connection.
async fn stub_conn(mut sock: tokio::net::TcpStream, st: StubState) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split_whitespace();
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let len: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        let (status, reply) = stub_answer(&st, &method, &path, body);
        let out = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        sock.write_all(out.as_bytes()).await?;
    }
}

fn stub_answer(st: &StubState, method: &str, path: &str, body: Value) -> (&'static str, String) {
    if method != "POST" || path != "/v1/embeddings" {
        return (
            "404 Not Found",
            json!({"error": "no such route"}).to_string(),
        );
    }
    st.requests.fetch_add(1, Ordering::SeqCst);
    st.seen
        .lock()
        .expect("stub lock")
        .push((method.into(), path.into(), body.clone()));
    if st.fail.load(Ordering::SeqCst) {
        return (
            "500 Internal Server Error",
            json!({"error": {"message": "stub is down"}}).to_string(),
        );
    }
    let Some(input) = body["input"].as_array() else {
        return (
            "400 Bad Request",
            json!({"error": "input must be an array"}).to_string(),
        );
    };
    // Items in reverse order: the client must place them by `index`.
    let data: Vec<Value> = input
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| {
            json!({
                "object": "embedding",
                "index": i,
                "embedding": hashed_vector(t.as_str().unwrap_or(""), st.dims),
            })
        })
        .collect();
    (
        "200 OK",
        json!({"object": "list", "data": data, "model": body["model"]}).to_string(),
    )
}

// ---------------------------------------------------------------------------
// 1. retrieval quality
// ---------------------------------------------------------------------------

/// Remember the fixture's memories and distractors; returns key → id.
async fn load_fixture(t: &TestApp, fx: &Value) -> std::collections::HashMap<String, String> {
    let mut by_key = std::collections::HashMap::new();
    for m in fx["memories"].as_array().expect("memories") {
        let id = remember_content(t, m["content"].as_str().expect("content"), None).await;
        by_key.insert(m["key"].as_str().expect("key").to_string(), id);
    }
    for d in fx["distractors"].as_array().expect("distractors") {
        remember_content(t, d.as_str().expect("distractor"), None).await;
    }
    by_key
}

/// hit@5 over the fixture's questions, and the methods recall reported.
async fn hit_at_5(
    t: &TestApp,
    fx: &Value,
    by_key: &std::collections::HashMap<String, String>,
) -> (f64, BTreeSet<String>, Vec<String>) {
    let qs = fx["questions"].as_array().expect("questions");
    let mut hits = 0;
    let mut methods = BTreeSet::new();
    let mut misses = Vec::new();
    for q in qs {
        let query = q["query"].as_str().expect("query");
        let want = &by_key[q["answer"].as_str().expect("answer")];
        let r = recall_q(t, query, 5).await;
        methods.insert(r["method"].as_str().unwrap_or("?").to_string());
        if ids(&r, "results").contains(want) {
            hits += 1;
        } else {
            misses.push(query.to_string());
        }
    }
    (hits as f64 / qs.len() as f64, methods, misses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_recall_finds_paraphrased_answers_far_better_than_keyword_search() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retrieval.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture"))
        .expect("fixture JSON");
    let total = fx["memories"].as_array().expect("memories").len()
        + fx["distractors"].as_array().expect("distractors").len();

    let t = spawn_with(native).await;
    let by_key = load_fixture(&t, &fx).await;
    let s = wait_backfill(&t, None).await;
    assert_eq!(s["embedded"].as_u64(), Some(total as u64), "{s}");
    assert_eq!(s["vectorTableRows"].as_u64(), Some(total as u64), "{s}");
    assert_eq!(s["provider"]["dimensions"], 384, "{s}");
    let (native_hit5, native_methods, native_misses) = hit_at_5(&t, &fx, &by_key).await;
    t.stop().await;

    let k = spawn_with(|cfg| {
        cfg.settings.embedding.provider = "none".into();
        cfg.settings.server.recall_cache_entries = 0;
    })
    .await;
    let by_key_kw = load_fixture(&k, &fx).await;
    let s = embed_status(&k, None).await;
    assert_eq!(s["provider"]["state"], "disabled", "{s}");
    let (keyword_hit5, keyword_methods, _) = hit_at_5(&k, &fx, &by_key_kw).await;
    k.stop().await;

    println!(
        "retrieval fixture ({} questions, {total} memories): hit@5 native = {native_hit5:.3}, keyword-only = {keyword_hit5:.3}",
        fx["questions"].as_array().map_or(0, |q| q.len())
    );
    println!("native misses: {native_misses:?}");
    assert_eq!(
        native_methods,
        BTreeSet::from(["hybrid".to_string()]),
        "every native recall ran the vector leg"
    );
    assert_eq!(keyword_methods, BTreeSet::from(["keyword".to_string()]));
    assert!(
        native_hit5 >= 0.8,
        "native hit@5 {native_hit5:.3} < 0.8; misses: {native_misses:?}"
    );
    assert!(
        native_hit5 > keyword_hit5,
        "native hit@5 {native_hit5:.3} is not above keyword-only {keyword_hit5:.3}"
    );
}

// ---------------------------------------------------------------------------
// 2. deleted rows, scope and filters in the vector leg
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_memory_never_surfaces_through_the_vector_leg_until_recovered() {
    let t = spawn_with(native).await;
    let target = remember_content(
        &t,
        "Our dog Biscuit needs his heartworm pill every month with dinner.",
        None,
    )
    .await;
    let sibling = remember_content(
        &t,
        "Remember to give the puppy his monthly heartworm medication at supper.",
        None,
    )
    .await;
    for c in [
        "The CI pipeline caches cargo registry downloads between runs.",
        "Invoices are emailed to customers on the first business day.",
        "The staging database is refreshed from a production snapshot weekly.",
    ] {
        remember_content(&t, c, None).await;
    }
    wait_backfill(&t, None).await;
    // No word in common with the target: only the vector leg can find it.
    let query = "When should the pet get its parasite tablet?";

    let r = recall_q(&t, query, 5).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    let hit = result_of(&r, &target).unwrap_or_else(|| {
        panic!(
            "premise: the paraphrase finds the live target: {}",
            show(&r)
        )
    });
    assert_eq!(hit["source"], "vector", "{}", show(&r));
    let s = similar(&t, &format!("id={sibling}&k=5"), None).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert!(
        ids(&s.body, "results").contains(&target),
        "premise: the target is a neighbour of its sibling: {}",
        show(&s.body)
    );

    let d = t
        .raw(
            "DELETE",
            &format!("/api/memory/{target}?reason=obsolete"),
            None,
        )
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_eq!(d.body["status"], "deleted", "{:?}", d.body);
    let s = embed_status(&t, None).await;
    assert!(
        s["vectorTableRows"].as_i64() >= Some(5),
        "premise: the deleted memory's vector is still stored: {s}"
    );

    for limit in [1, 5, 50] {
        let r = recall_q(&t, query, limit).await;
        assert_eq!(r["method"], "hybrid", "{}", show(&r));
        assert!(
            !ids(&r, "results").contains(&target),
            "deleted memory recalled (limit {limit}): {}",
            show(&r)
        );
    }
    // Its own content, word for word, finds it neither.
    let r = recall_q(
        &t,
        "Our dog Biscuit needs his heartworm pill every month with dinner",
        10,
    )
    .await;
    assert!(!ids(&r, "results").contains(&target), "{}", show(&r));
    for path in ["/memory/similar", "/api/memory/similar"] {
        let s = call(&t, "GET", &format!("{path}?id={sibling}&k=100"), None, None).await;
        assert_eq!(s.status, 200, "{:?}", s.body);
        assert!(
            !ids(&s.body, "results").contains(&target),
            "{path}: deleted memory among the neighbours: {}",
            show(&s.body)
        );
    }
    let s = similar(&t, &format!("id={target}"), None).await;
    assert_eq!(s.status, 404, "similar of a deleted memory: {:?}", s.body);

    let rec = t
        .post(
            &format!("/api/memory/{target}/recover"),
            json!({ "reason": "still true" }),
        )
        .await;
    assert_eq!(rec.status, 200, "{:?}", rec.body);
    assert_eq!(rec.body["status"], "recovered", "{:?}", rec.body);
    let r = recall_q(&t, query, 5).await;
    assert!(
        ids(&r, "results").contains(&target),
        "recovered memory is found again: {}",
        show(&r)
    );
    let s = similar(&t, &format!("id={sibling}&k=5"), None).await;
    assert!(
        ids(&s.body, "results").contains(&target),
        "recovered memory is a neighbour again: {}",
        show(&s.body)
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_scoped_tokens_never_see_the_other_projects_vectors() {
    let t = spawn_with(|cfg| {
        native(cfg);
        team(cfg);
    })
    .await;
    let admin = token(&t, Role::Admin, "sem-admin", Scope::default());
    let a = token(&t, Role::Agent, "agent-a", project("alpha"));
    let b = token(&t, Role::Agent, "agent-b", project("beta"));

    let a_coffee = remember_content(
        &t,
        "The office coffee machine is descaled every Friday afternoon.",
        Some(&a),
    )
    .await;
    let a_other = remember_content(
        &t,
        "Alpha deploys its website on Monday mornings.",
        Some(&a),
    )
    .await;
    let mut b_ids = Vec::new();
    for c in [
        "The espresso maker gets cleaned once a week.",
        "Someone cleans the espresso maker weekly.",
        "Weekly cleaning keeps the espresso maker working.",
    ] {
        b_ids.push(remember_content(&t, c, Some(&b)).await);
    }
    let s = wait_backfill(&t, Some(&admin)).await;
    assert_eq!(s["embedded"], 5, "{s}");
    let query = "How often is the espresso maker cleaned?";

    // Premise: unscoped, the beta rows are the closest.
    let r = recall_ok(&t, json!({ "query": query, "limit": 10 }), Some(&admin)).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert!(
        b_ids.contains(&ids(&r, "results")[0]),
        "premise: a beta memory ranks first unscoped: {}",
        show(&r)
    );
    let s = similar(&t, &format!("id={a_coffee}&k=3"), Some(&admin)).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert!(
        ids(&s.body, "results").iter().any(|i| b_ids.contains(i)),
        "premise: beta rows are neighbours of the alpha coffee memory unscoped: {}",
        show(&s.body)
    );

    // Scoped to alpha: recall, search and similar stay inside alpha.
    let r = recall_ok(&t, json!({ "query": query, "limit": 10 }), Some(&a)).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    let got = ids(&r, "results");
    assert!(
        got.iter().all(|i| !b_ids.contains(i)),
        "beta leaked into alpha recall: {}",
        show(&r)
    );
    assert_eq!(
        got.first(),
        Some(&a_coffee),
        "alpha's own match is found: {}",
        show(&r)
    );
    assert!(
        r["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|x| x["project"] == "alpha"),
        "{}",
        show(&r)
    );
    let r = recall_ok(
        &t,
        json!({ "query": query, "limit": 10, "project": "beta" }),
        Some(&a),
    )
    .await;
    assert!(
        ids(&r, "results").is_empty(),
        "asking for beta does not widen the scope: {}",
        show(&r)
    );
    let g = call(
        &t,
        "GET",
        "/api/memory/search?q=espresso%20maker%20cleaned%20weekly",
        None,
        Some(&a),
    )
    .await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert!(
        ids(&g.body, "results").iter().all(|i| !b_ids.contains(i)),
        "{}",
        show(&g.body)
    );

    let s = similar(&t, &format!("id={a_coffee}&k=10"), Some(&a)).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(s.body["embedded"], true, "{:?}", s.body);
    assert!(
        ids(&s.body, "results").iter().all(|i| *i == a_other),
        "alpha similar sees only alpha rows: {}",
        show(&s.body)
    );
    for id in &b_ids {
        for path in ["/memory/similar", "/api/memory/similar"] {
            let s = call(&t, "GET", &format!("{path}?id={id}&k=5"), None, Some(&a)).await;
            assert_eq!(s.status, 403, "{path} of an out-of-scope id: {:?}", s.body);
            assert!(s.body["error"].is_string(), "{:?}", s.body);
        }
    }

    // And the other way round.
    let r = recall_ok(
        &t,
        json!({ "query": "Which weekday afternoon is the coffee machine descaled?", "limit": 10 }),
        Some(&b),
    )
    .await;
    assert!(
        !ids(&r, "results").contains(&a_coffee),
        "alpha leaked into beta recall: {}",
        show(&r)
    );
    assert!(!ids(&r, "results").contains(&a_other), "{}", show(&r));
    let s = similar(&t, &format!("id={}&k=10", b_ids[0]), Some(&b)).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    let got: BTreeSet<String> = ids(&s.body, "results").into_iter().collect();
    assert_eq!(
        got,
        b_ids[1..].iter().cloned().collect(),
        "{}",
        show(&s.body)
    );
    let s = similar(&t, &format!("id={a_coffee}"), Some(&b)).await;
    assert_eq!(s.status, 403, "{:?}", s.body);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_apply_inside_the_vector_leg_not_after_its_candidate_window() {
    let t = spawn_with(native).await;
    for i in 0..30 {
        remember_new(
            &t,
            json!({
                "content": format!("Nightly database snapshots are preserved in cold storage, copy number {i}."),
                "type": "fact",
            }),
            None,
        )
        .await;
    }
    let rule = remember_new(
        &t,
        json!({
            "content": "Backups must be encrypted before they leave the server.",
            "type": "rule",
            "tags": ["security"],
            "pinned": true,
            "importance": 0.95,
        }),
        None,
    )
    .await;
    assert_eq!(rule["type"], "rule");
    let rule = rule["id"].as_str().expect("id").to_string();
    wait_backfill(&t, None).await;
    // No word in common with the rule.
    let query = "how are database snapshots kept safe overnight";

    let r = recall_q(&t, query, 20).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert!(
        !ids(&r, "results").contains(&rule),
        "premise: unfiltered, 20 facts outrank the rule: {}",
        show(&r)
    );
    let r = recall_ok(
        &t,
        json!({ "query": query, "limit": 1, "type": "rule" }),
        None,
    )
    .await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert_eq!(ids(&r, "results"), vec![rule.clone()], "{}", show(&r));
    assert_eq!(r["results"][0]["type"], "rule");
    assert_eq!(r["results"][0]["source"], "vector", "{}", show(&r));
    for (name, filter) in [
        ("tags", json!({ "tags": "security" })),
        ("pinned", json!({ "pinned": true })),
        ("importance_min", json!({ "importance_min": 0.9 })),
    ] {
        let mut body = json!({ "query": query, "limit": 1 });
        for (k, v) in filter.as_object().expect("filter") {
            body[k] = v.clone();
        }
        let r = recall_ok(&t, body, None).await;
        assert_eq!(
            ids(&r, "results"),
            vec![rule.clone()],
            "{name}: {}",
            show(&r)
        );
    }
    // A filter nothing passes gives nothing, not the nearest facts.
    let r = recall_ok(
        &t,
        json!({ "query": query, "limit": 5, "type": "preference" }),
        None,
    )
    .await;
    assert!(ids(&r, "results").is_empty(), "{}", show(&r));
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 3. /memory/similar
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_returns_the_nearest_other_memories_best_first_and_validates_its_arguments() {
    let t = spawn_with(native).await;
    let cat = remember_content(&t, "Cats purr when they are content and relaxed.", None).await;
    let kitten = remember_content(
        &t,
        "A kitten sleeps most of the day curled up on the sofa.",
        None,
    )
    .await;
    let tabby = remember_content(
        &t,
        "Our tabby cat loves chasing the red dot of a laser pointer.",
        None,
    )
    .await;
    let mut others = Vec::new();
    for c in [
        "PostgreSQL vacuum reclaims storage occupied by dead tuples.",
        "The index on orders.created_at speeds up the monthly revenue report.",
        "The violin concert starts at eight in the evening.",
    ] {
        others.push(remember_content(&t, c, None).await);
    }
    wait_backfill(&t, None).await;

    for path in ["/memory/similar", "/api/memory/similar"] {
        let s = call(&t, "GET", &format!("{path}?id={cat}&k=2"), None, None).await;
        assert_eq!(s.status, 200, "{path}: {:?}", s.body);
        assert_eq!(s.body["id"], cat.as_str());
        assert_eq!(s.body["embedded"], true);
        assert_eq!(s.body["method"], "vector");
        assert_eq!(
            ids(&s.body, "results").into_iter().collect::<BTreeSet<_>>(),
            BTreeSet::from([kitten.clone(), tabby.clone()]),
            "{path}: the two other cat memories are the nearest: {}",
            show(&s.body)
        );
        assert!(non_increasing(&scores(&s.body)), "{}", show(&s.body));
        assert!(
            s.body["results"]
                .as_array()
                .expect("results")
                .iter()
                .all(|r| r["source"] == "vector"),
            "{}",
            show(&s.body)
        );
    }
    let s = similar(&t, &format!("id={cat}&k=1"), None).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(ids(&s.body, "results").len(), 1, "k=1: {}", show(&s.body));
    let s = similar(&t, &format!("id={cat}&k=100"), None).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    let got = ids(&s.body, "results");
    assert!(
        !got.contains(&cat),
        "the memory itself is excluded: {}",
        show(&s.body)
    );
    assert!(got.len() <= 5, "{}", show(&s.body));
    assert!(
        got.len() >= 2
            && (got[..2] == [kitten.clone(), tabby.clone()]
                || got[..2] == [tabby.clone(), kitten.clone()]),
        "cats first: {}",
        show(&s.body)
    );
    assert!(
        non_increasing(&scores(&s.body)),
        "best first: {}",
        show(&s.body)
    );
    assert!(
        scores(&s.body).iter().all(|x| *x > 0.0 && *x <= 1.0),
        "{}",
        show(&s.body)
    );
    // Default k is 10: everything else above min_score.
    let s = similar(&t, &format!("id={}", others[0]), None).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert!(
        !ids(&s.body, "results").contains(&others[0]),
        "{}",
        show(&s.body)
    );

    for q in [
        "id=00000000-0000-4000-8000-000000000000".to_string(),
        "id=no-such-memory&k=3".to_string(),
    ] {
        let s = similar(&t, &q, None).await;
        assert_eq!(s.status, 404, "{q}: {:?}", s.body);
        assert!(s.body["error"].is_string(), "{:?}", s.body);
    }
    for q in [
        format!("id={cat}&k=0"),
        format!("id={cat}&k=abc"),
        format!("id={cat}&k=-1"),
        format!("id={cat}&k=101"),
        format!("id={cat}&k="),
        "k=3".to_string(),
        "id=&k=3".to_string(),
        String::new(),
    ] {
        let s = similar(&t, &q, None).await;
        assert_eq!(s.status, 400, "?{q}: {:?}", s.body);
        assert!(s.body["error"].is_string(), "{:?}", s.body);
    }
    let s = t.get("/memory/similar").await;
    assert_eq!(s.status, 400, "no query string: {:?}", s.body);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 4. waitForEmbedding
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_embedding_makes_a_memory_findable_by_meaning_at_once() {
    let t = spawn_with(native).await;
    wait_ready(&t).await;
    for c in [
        "The quarterly tax filing is due at the end of April.",
        "Grandma's apple pie recipe uses cinnamon and nutmeg.",
    ] {
        let r = remember_new(&t, json!({ "content": c }), None).await;
        assert_eq!(r["embedded"], false, "no wait, no vector yet: {r}");
    }
    let r = remember_new(
        &t,
        json!({
            "content": "The car's winter tyres are stored in the garage loft.",
            "waitForEmbedding": true,
        }),
        None,
    )
    .await;
    assert_eq!(r["embedded"], true, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    // At once, by meaning (no word in common).
    let q = recall_q(
        &t,
        "Where do we keep the snow wheels for the automobile?",
        3,
    )
    .await;
    assert_eq!(q["method"], "hybrid", "{}", show(&q));
    assert_eq!(ids(&q, "results").first(), Some(&id), "{}", show(&q));
    let src = q["results"][0]["source"].as_str().unwrap_or("");
    assert!(src == "vector" || src == "hybrid", "{}", show(&q));
    let g = t.get(&format!("/api/memory/{id}")).await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert_eq!(
        g.body["embedding_model"], "all-MiniLM-L6-v2",
        "{:?}",
        g.body
    );
    let s = similar(&t, &format!("id={id}"), None).await;
    assert_eq!(s.body["embedded"], true, "{:?}", s.body);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 5. a content change re-embeds
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_content_replaces_the_vector_with_one_of_the_new_content() {
    let t = spawn_with(native).await;
    let target = remember_content(
        &t,
        "The staging cluster runs on three Kubernetes nodes in Frankfurt.",
        None,
    )
    .await;
    let prod = remember_content(
        &t,
        "Production traffic is served by a Kubernetes cluster of twelve nodes in Virginia.",
        None,
    )
    .await;
    for c in [
        "Grandma's apple pie recipe uses cinnamon and nutmeg.",
        "The quarterly tax filing is due at the end of April.",
        "Our cat refuses to eat the new brand of dry food.",
    ] {
        remember_content(&t, c, None).await;
    }
    wait_backfill(&t, None).await;
    let old_q = "Where is the pre-production container environment hosted?";
    let new_q = "When and where will the advertising staff celebrate the end of the year?";
    let r = recall_q(&t, old_q, 5).await;
    assert_eq!(
        ids(&r, "results").first(),
        Some(&target),
        "premise: {}",
        show(&r)
    );
    let r = recall_q(&t, new_q, 5).await;
    assert_ne!(
        ids(&r, "results").first(),
        Some(&target),
        "premise: {}",
        show(&r)
    );

    let p = t
        .send(
            "PATCH",
            &format!("/api/memory/{target}"),
            json!({
                "content": "The marketing team's holiday party is booked at a riverside restaurant in December.",
                "reason": "topic changed",
            }),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["status"], "updated", "{:?}", p.body);
    assert_eq!(p.body["contentChanged"], true, "{:?}", p.body);
    assert_eq!(
        p.body["embedded"], false,
        "the old vector is dropped: {:?}",
        p.body
    );

    // Well before the pipeline's 60 s cursor rescan: the `embed` job does it.
    let s = wait_backfill_within(&t, None, Duration::from_secs(20)).await;
    assert_eq!(s["embedded"], 5, "{s}");
    assert_eq!(s["vectorTableRows"], 5, "{s}");
    let g = t.get(&format!("/api/memory/{target}")).await;
    assert_eq!(
        g.body["embedding_model"], "all-MiniLM-L6-v2",
        "{:?}",
        g.body
    );

    let r = recall_q(&t, new_q, 5).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert_eq!(
        ids(&r, "results").first(),
        Some(&target),
        "the new content is found by meaning: {}",
        show(&r)
    );
    assert_eq!(r["results"][0]["source"], "vector", "{}", show(&r));
    let r = recall_q(&t, old_q, 5).await;
    assert_ne!(
        ids(&r, "results").first(),
        Some(&target),
        "the old vector no longer ranks it first: {}",
        show(&r)
    );
    assert_eq!(ids(&r, "results").first(), Some(&prod), "{}", show(&r));
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 6. provider down
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_degrades_to_keyword_recall_and_the_backfill_catches_up_when_it_returns()
{
    let stub = Stub::start(384, true).await;
    let t = spawn_with(|cfg| openai(cfg, &stub.url)).await;

    let mut ids_all = Vec::new();
    for c in [
        "The zebra crossing near the office was repainted yellow.",
        "Deploys go out every Tuesday after the standup.",
        "The coffee grinder in the kitchen is broken again.",
    ] {
        let started = Instant::now();
        let r = remember_new(&t, json!({ "content": c }), None).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "remember took {:?}",
            started.elapsed()
        );
        assert_eq!(r["embedded"], false, "{r}");
        ids_all.push(r["id"].as_str().expect("id").to_string());
    }
    let zebra = ids_all[0].clone();
    let started = Instant::now();
    let r = remember_new(
        &t,
        json!({ "content": "Quarterly planning happens in the big room.", "waitForEmbedding": true }),
        None,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waitForEmbedding took {:?}",
        started.elapsed()
    );
    assert_eq!(r["embedded"], false, "a failing provider never embeds: {r}");
    let planning = r["id"].as_str().expect("id").to_string();

    let s = wait_status(
        &t,
        None,
        Duration::from_secs(10),
        "a failed backfill batch",
        |s| {
            s["backfill"]["failures"].as_u64() >= Some(1)
                && s["provider"]["failures"].as_u64() >= Some(1)
        },
    )
    .await;
    assert_eq!(s["pending"], 4, "{s}");
    assert_eq!(s["embedded"], 0, "{s}");
    assert_eq!(s["vectorTableRows"], 0, "{s}");
    assert_eq!(s["provider"]["provider"], "openai", "{s}");
    assert!(
        s["provider"]["successRate"].as_f64().expect("successRate") < 1.0,
        "{s}"
    );
    let (method, path, body) = stub.last().expect("the stub was called");
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/v1/embeddings"));
    assert_eq!(body["model"], "stub-embed", "{body}");
    assert!(
        body["input"]
            .as_array()
            .is_some_and(|i| !i.is_empty() && i.iter().all(Value::is_string)),
        "{body}"
    );

    for _ in 0..3 {
        let started = Instant::now();
        let r = recall_q(&t, "zebra", 5).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "recall took {:?}",
            started.elapsed()
        );
        assert_eq!(r["method"], "keyword", "{}", show(&r));
        assert_eq!(ids(&r, "results"), vec![zebra.clone()], "{}", show(&r));
        assert_eq!(r["results"][0]["source"], "keyword", "{}", show(&r));
    }
    // Once the circuit closed, a recall asks the provider again, which
    // still fails: keyword results, no error, no delay.
    recall_through_a_failing_provider(&t, "zebra", &zebra).await;
    assert!(
        stub.saw_input(&["zebra"]),
        "the recall's query went to the stub"
    );
    let d = t.get("/api/diagnostics/provider").await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    let rate = d.body["provider"]["successRate"]
        .as_f64()
        .unwrap_or_else(|| panic!("successRate: {:?}", d.body));
    assert!(rate < 1.0, "{:?}", d.body);
    assert!(
        d.body["provider"]["score"].as_f64().expect("score") < 1.0,
        "{:?}",
        d.body
    );
    let st = t.get("/api/status").await;
    assert_eq!(
        st.body["embedding"]["provider"], "openai",
        "{:?}",
        st.body["embedding"]
    );
    let sim = similar(&t, &format!("id={zebra}"), None).await;
    assert_eq!(sim.status, 200, "{:?}", sim.body);
    assert_eq!(sim.body["embedded"], false, "{:?}", sim.body);
    assert_eq!(sim.body["results"], json!([]), "{:?}", sim.body);

    // The provider comes back: the backfill fills the gap.
    stub.fail.store(false, Ordering::SeqCst);
    let s = wait_status(
        &t,
        None,
        Duration::from_secs(30),
        "backfill after the provider recovered",
        |s| s["pending"].as_i64() == Some(0) && s["index"]["vectors"].as_i64() == Some(4),
    )
    .await;
    assert_eq!(s["vectorTableRows"], 4, "{s}");
    assert!(s["backfill"]["embedded"].as_u64() >= Some(4), "{s}");
    let r = recall_q(&t, "zebra", 5).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert_eq!(ids(&r, "results").first(), Some(&zebra), "{}", show(&r));
    assert_eq!(r["results"][0]["source"], "hybrid", "{}", show(&r));
    // Words the memory shares only partly ("paint" is not "repainted"):
    // any shared word is a keyword match, and the vector leg agrees.
    let r = recall_q(&t, "zebra office paint", 5).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert_eq!(ids(&r, "results").first(), Some(&zebra), "{}", show(&r));
    assert_eq!(r["results"][0]["source"], "hybrid", "{}", show(&r));
    let r = recall_q(&t, "planning room", 5).await;
    assert_eq!(ids(&r, "results").first(), Some(&planning), "{}", show(&r));
    let sim = similar(&t, &format!("id={zebra}"), None).await;
    assert_eq!(sim.body["embedded"], true, "{:?}", sim.body);
    assert!(stub.requests.load(Ordering::SeqCst) >= 3);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_on_a_closed_port_never_slows_or_fails_remember_and_recall() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let t = spawn_with(|cfg| openai(cfg, &format!("http://127.0.0.1:{port}"))).await;
    let mut zebra = String::new();
    for (i, c) in [
        "The zebra crossing near the office was repainted yellow.",
        "Deploys go out every Tuesday after the standup.",
    ]
    .into_iter()
    .enumerate()
    {
        for wait in [false, true] {
            let started = Instant::now();
            let r = call(
                &t,
                "POST",
                "/api/memory/remember",
                Some(json!({ "content": c, "waitForEmbedding": wait })),
                None,
            )
            .await;
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "remember took {:?}",
                started.elapsed()
            );
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_eq!(r.body["embedded"], false, "{:?}", r.body);
            if i == 0 {
                zebra = r.body["id"].as_str().expect("id").to_string();
            }
        }
    }
    for _ in 0..4 {
        let started = Instant::now();
        let r = recall_q(&t, "zebra", 5).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "recall took {:?}",
            started.elapsed()
        );
        assert_eq!(r["method"], "keyword", "{}", show(&r));
        assert_eq!(ids(&r, "results"), vec![zebra.clone()], "{}", show(&r));
    }
    let s = wait_status(
        &t,
        None,
        Duration::from_secs(10),
        "a failed backfill batch",
        |s| s["backfill"]["failures"].as_u64() >= Some(1),
    )
    .await;
    assert_eq!(s["pending"], 2, "{s}");
    assert_eq!(s["vectorTableRows"], 0, "{s}");
    let calls = s["provider"]["calls"].as_u64().expect("calls");
    recall_through_a_failing_provider(&t, "zebra", &zebra).await;
    let s = embed_status(&t, None).await;
    assert!(
        s["provider"]["calls"].as_u64() > Some(calls),
        "the recall tried the provider: {s}"
    );
    let started = Instant::now();
    let st = t.get("/api/status").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(st.status, 200);
    assert_eq!(
        st.body["embedding"]["provider"], "openai",
        "{:?}",
        st.body["embedding"]
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 7. dimension mismatch
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_of_the_wrong_dimension_are_never_stored_and_count_as_failures() {
    let stub = Stub::start(8, false).await;
    let t = spawn_with(|cfg| openai(cfg, &stub.url)).await;
    let zebra = remember_content(
        &t,
        "The zebra crossing near the office was repainted yellow.",
        None,
    )
    .await;
    remember_content(&t, "Deploys go out every Tuesday after the standup.", None).await;
    let r = remember_new(
        &t,
        json!({ "content": "The coffee grinder in the kitchen is broken again.", "waitForEmbedding": true }),
        None,
    )
    .await;
    assert_eq!(
        r["embedded"], false,
        "an 8-dimensional vector is refused: {r}"
    );

    let s = wait_status(
        &t,
        None,
        Duration::from_secs(15),
        "two failed backfill batches",
        |s| s["backfill"]["failures"].as_u64() >= Some(2),
    )
    .await;
    assert!(
        stub.requests.load(Ordering::SeqCst) >= 3,
        "the stub answered (with 8 dimensions)"
    );
    assert_eq!(s["vectorTableRows"], 0, "{s}");
    assert_eq!(s["index"]["vectors"], 0, "{s}");
    assert_eq!(s["embedded"], 0, "{s}");
    assert_eq!(s["pending"], 3, "{s}");
    assert_eq!(s["provider"]["dimensions"], 384, "{s}");
    assert!(s["provider"]["failures"].as_u64() >= Some(3), "{s}");
    assert_eq!(s["provider"]["successRate"].as_f64(), Some(0.0), "{s}");
    let p = t.get("/api/pipeline/status").await;
    let last = p.body["stats"]["lastError"].as_str().unwrap_or("");
    assert!(
        last.contains("8 dimensions"),
        "pipeline lastError: {:?}",
        p.body["stats"]
    );

    let r = recall_q(&t, "zebra", 5).await;
    assert_eq!(r["method"], "keyword", "{}", show(&r));
    assert_eq!(ids(&r, "results"), vec![zebra.clone()], "{}", show(&r));
    let s = embed_status(&t, None).await;
    assert_eq!(s["vectorTableRows"], 0, "{s}");
    assert_eq!(s["pending"], 3, "{s}");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 8. re-embed jobs after a backfill failure
// ---------------------------------------------------------------------------

// A failed backfill batch whose gap then disappears (the memory was deleted,
// or embedded by a `waitForEmbedding` remember) must not leave the backoff
// gating embed jobs: a re-embed after PATCH runs at once, not at the next
// 60 s cursor rescan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_failure_whose_gap_went_away_does_not_stall_re_embedding() {
    let stub = Stub::start(384, false).await;
    let t = spawn_with(|cfg| openai(cfg, &stub.url)).await;
    let kept = remember_content(
        &t,
        "The zebra crossing near the office was repainted yellow.",
        None,
    )
    .await;
    wait_backfill(&t, None).await;

    // A batch fails, then its only gap is deleted.
    stub.fail.store(true, Ordering::SeqCst);
    let gone = remember_content(&t, "Deploys go out every Tuesday after the standup.", None).await;
    wait_status(
        &t,
        None,
        Duration::from_secs(10),
        "a failed backfill batch",
        |s| s["backfill"]["failures"].as_u64() >= Some(1),
    )
    .await;
    let d = t
        .raw("DELETE", &format!("/api/memory/{gone}?reason=gone"), None)
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    stub.fail.store(false, Ordering::SeqCst);

    // The provider is healthy again; a content change must re-embed soon.
    let p = t
        .send(
            "PATCH",
            &format!("/api/memory/{kept}"),
            json!({ "content": "The giraffe enclosure at the zoo was repainted green.", "reason": "fix" }),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["contentChanged"], true, "{:?}", p.body);
    wait_status(
        &t,
        None,
        Duration::from_secs(20),
        "re-embed after the content change",
        |s| s["pending"].as_i64() == Some(0),
    )
    .await;
    let r = recall_q(&t, "giraffe zoo green paint", 5).await;
    assert_eq!(ids(&r, "results").first(), Some(&kept), "{}", show(&r));
    t.stop().await;
}

/// Min-max scaling alone would rank the best of unrelated memories at 1:
/// with the vector leg's confidence a question nothing is related to
/// finds nothing, and a related one still finds its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_nothing_is_related_to_finds_nothing() {
    let t = spawn_with(native).await;
    let pie = remember_content(
        &t,
        "Grandma's apple pie recipe uses cinnamon and nutmeg.",
        None,
    )
    .await;
    remember_content(
        &t,
        "Bake the bread at 220 degrees for thirty minutes.",
        None,
    )
    .await;
    remember_content(&t, "The soup needs more salt and a bay leaf.", None).await;
    wait_backfill(&t, None).await;
    let r = recall_q(&t, "quantum chromodynamics on a lattice", 5).await;
    assert_eq!(r["method"], "hybrid", "{}", show(&r));
    assert!(ids(&r, "results").is_empty(), "{}", show(&r));
    let r = recall_q(&t, "which dessert has spices in it?", 5).await;
    assert_eq!(ids(&r, "results").first(), Some(&pie), "{}", show(&r));
    t.stop().await;
}
