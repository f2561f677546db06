//! Black-box tests of the extraction pipeline (SPEC §8, events of §10): a
//! real daemon on a real port, and a real stub LLM server (ollama
//! `POST /api/generate` and openai `POST /v1/chat/completions`) whose
//! answers each test scripts and whose received prompts it records.
//!
//! Covered: ADD of a fact with no similar memory, the reply variants the
//! parser must tolerate, the confidence floor, failures (garbage, HTTP
//! errors, timeouts) with backoff and dead-lettering, `job.completed` and
//! `job.dead` on `/sse`, the four decisions against candidates (and the
//! refusals), candidate scope, shadow mode, the mutation kill switch,
//! stale leases after a restart, the repair endpoints, and enqueue dedupe.
//!
//! Job rows are read straight from the workspace's SQLite file, read-only.
//! Every wait is bounded, so no test can hang on a silent pipeline.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use signet::config::Config;
use tokio::sync::Semaphore;
use warp::Filter;

use crate::helpers::sse::{open_sse, Next, SseClient};
use crate::helpers::{history, patch, remember_as, spawn_in, spawn_with, Resp, TestApp};

// ---------------------------------------------------------------------------
// stub LLM
// ---------------------------------------------------------------------------

const EXTRACT: &str = "EXTRACT FACTS";
const DECIDE: &str = "DECIDE MEMORY ACTION";

/// One request the stub received.
#[derive(Debug, Clone)]
struct Call {
    /// `ollama` or `openai` (which route was hit).
    flavor: &'static str,
    model: String,
    prompt: String,
}

impl Call {
    fn is_extract(&self) -> bool {
        self.prompt.starts_with(EXTRACT)
    }

    fn is_decide(&self) -> bool {
        self.prompt.starts_with(DECIDE)
    }
}

/// What the stub answers to one call.
enum Reply {
    /// The LLM's text, wrapped in the flavor's envelope.
    Text(String),
    /// The text, after sleeping.
    Slow(Duration, String),
    /// The text, once the semaphore hands out a permit (never, if the
    /// test never adds one).
    Held(Arc<Semaphore>, String),
    /// An HTTP error status.
    Status(u16),
}

type Script = Arc<dyn Fn(&Call) -> Reply + Send + Sync>;

/// A scriptable LLM server on 127.0.0.1:<random port>.
#[derive(Clone)]
struct Stub {
    endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<Script>>,
}

impl Stub {
    async fn start(script: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("stub addr");
        let stub = Stub {
            endpoint: format!("http://{addr}"),
            calls: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(Arc::new(script))),
        };
        let s = stub.clone();
        let generate = warp::post()
            .and(warp::path!("api" / "generate"))
            .and(warp::body::json())
            .and_then(move |body: Value| {
                let s = s.clone();
                async move { Ok::<_, Infallible>(s.answer("ollama", body).await) }
            });
        let s = stub.clone();
        let chat = warp::post()
            .and(warp::path!("v1" / "chat" / "completions"))
            .and(warp::body::json())
            .and_then(move |body: Value| {
                let s = s.clone();
                async move { Ok::<_, Infallible>(s.answer("openai", body).await) }
            });
        tokio::spawn(warp::serve(generate.or(chat)).incoming(listener).run());
        stub
    }

    /// Replace the script.
    fn set(&self, script: impl Fn(&Call) -> Reply + Send + Sync + 'static) {
        *self.script.lock().expect("script") = Arc::new(script);
    }

    async fn answer(&self, flavor: &'static str, body: Value) -> warp::reply::Response {
        use warp::Reply as _;
        let prompt = match flavor {
            "ollama" => {
                assert_eq!(
                    body["stream"], false,
                    "ollama request must not stream: {body}"
                );
                body["prompt"].as_str()
            }
            _ => body["messages"][0]["content"].as_str(),
        }
        .unwrap_or_default()
        .to_string();
        let call = Call {
            flavor,
            model: body["model"].as_str().unwrap_or_default().to_string(),
            prompt,
        };
        self.calls.lock().expect("calls").push(call.clone());
        let script = self.script.lock().expect("script").clone();
        let text = match script(&call) {
            Reply::Text(t) => t,
            Reply::Slow(d, t) => {
                tokio::time::sleep(d).await;
                t
            }
            Reply::Held(gate, t) => {
                let _permit = gate.acquire().await.expect("gate");
                t
            }
            Reply::Status(code) => {
                return warp::reply::with_status(
                    warp::reply::json(&json!({"error": "stub failure"})),
                    warp::http::StatusCode::from_u16(code).expect("status"),
                )
                .into_response()
            }
        };
        let envelope = match flavor {
            "ollama" => json!({"model": call.model, "response": text, "done": true}),
            _ => {
                json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
            }
        };
        warp::reply::json(&envelope).into_response()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    fn extract_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_extract).collect()
    }

    fn decide_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_decide).collect()
    }
}

/// `{"facts":[...]}` with each fact's content and confidence.
fn facts(list: &[(&str, f64)]) -> String {
    json!({
        "facts": list
            .iter()
            .map(|(c, conf)| json!({"content": c, "type": "fact", "confidence": conf}))
            .collect::<Vec<_>>()
    })
    .to_string()
}

fn no_facts() -> Reply {
    Reply::Text(facts(&[]))
}

fn decision(action: &str, target: Option<&str>, content: Option<&str>) -> String {
    json!({"action": action, "targetId": target, "content": content, "reason": format!("stub says {action}")})
        .to_string()
}

/// The id listed for the candidate whose content contains `needle` in a
/// decision prompt (`- [<id>] <content>` lines).
fn candidate_id(prompt: &str, needle: &str) -> Option<String> {
    prompt.lines().find_map(|l| {
        let rest = l.strip_prefix("- [")?;
        let (id, content) = rest.split_once("] ")?;
        content.contains(needle).then(|| id.to_string())
    })
}

/// Every `(id, content)` candidate listed in a decision prompt.
fn candidates(prompt: &str) -> Vec<(String, String)> {
    prompt
        .lines()
        .filter_map(|l| {
            let (id, content) = l.strip_prefix("- [")?.split_once("] ")?;
            Some((id.to_string(), content.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// daemon helpers
// ---------------------------------------------------------------------------

/// Extraction through `stub` with `flavor`; no embeddings (neighbours come
/// from the keyword leg); a fast poll.
fn extraction(cfg: &mut Config, flavor: &str, stub: &Stub) {
    cfg.settings.embedding.provider = "none".into();
    let p = &mut cfg.settings.memory.pipeline_v2;
    p.enabled = true;
    p.poll_ms = 50;
    p.extraction.provider = flavor.into();
    p.extraction.endpoint = Some(stub.endpoint.clone());
    p.extraction.model = Some("stub-model".into());
    p.extraction.timeout_ms = 5_000;
}

async fn spawn_extracting(flavor: &str, stub: &Stub) -> TestApp {
    spawn_with(|cfg| extraction(cfg, flavor, stub)).await
}

async fn record(t: &TestApp, id: &str) -> Resp {
    t.get(&format!("/api/memory/{id}")).await
}

async fn live_record(t: &TestApp, id: &str) -> Value {
    let r = record(t, id).await;
    assert_eq!(r.status, 200, "GET memory {id}: {:?}", r.body);
    r.body
}

/// Live memories (the list endpoint).
async fn live(t: &TestApp) -> Vec<Value> {
    let r = t.get("/api/memories?limit=1000").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["memories"].as_array().expect("memories[]").clone()
}

/// Live memories written by the pipeline.
async fn by_pipeline(t: &TestApp) -> Vec<Value> {
    live(t)
        .await
        .into_iter()
        .filter(|m| m["who"] == "pipeline")
        .collect()
}

async fn pipeline_status(t: &TestApp) -> Value {
    let r = t.get("/api/pipeline/status").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn job_api(t: &TestApp, id: &str) -> Value {
    let r = t.get(&format!("/api/memory/jobs/{id}")).await;
    assert_eq!(r.status, 200, "GET job {id}: {:?}", r.body);
    r.body
}

/// Poll `probe` until it yields a value (panics after `wait`).
async fn wait_until<T, F, Fut>(what: &str, wait: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {wait:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------
// job rows, read straight from SQLite
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct JobRow {
    id: String,
    memory_id: String,
    kind: String,
    status: String,
    attempts: i64,
    max_attempts: i64,
    leased_at: Option<String>,
    run_after: Option<String>,
    error: Option<String>,
    created_at: String,
    updated_at: String,
}

fn open_db(workspace: &Path) -> Connection {
    let path = workspace.join("memory").join("memories.db");
    Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()))
}

/// Mark job `id` leased 2 s ago, as a daemon that crashed mid-job leaves
/// it (past the tests' 1 s lease timeout). A clean stop releases its
/// leases, so only a crash leaves one behind.
fn leave_stale_lease(workspace: &Path, id: &str) {
    let at = (chrono::Utc::now() - chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let n = Connection::open(workspace.join("memory").join("memories.db"))
        .expect("open read-write")
        .execute(
            "UPDATE memory_jobs SET status = 'leased', leased_at = ?1 WHERE id = ?2",
            rusqlite::params![at, id],
        )
        .expect("leave a stale lease");
    assert_eq!(n, 1, "no job {id}");
}

/// Every job of `memory_id` (any kind), oldest first.
fn jobs_of(t: &TestApp, memory_id: &str) -> Vec<JobRow> {
    let db = open_db(&t.workspace);
    let mut stmt = db
        .prepare(
            "SELECT id, memory_id, kind, status, attempts, max_attempts, leased_at, run_after, error,
                    created_at, updated_at
             FROM memory_jobs WHERE memory_id = ?1 ORDER BY rowid",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([memory_id], |r| {
            Ok(JobRow {
                id: r.get(0)?,
                memory_id: r.get(1)?,
                kind: r.get(2)?,
                status: r.get(3)?,
                attempts: r.get(4)?,
                max_attempts: r.get(5)?,
                leased_at: r.get(6)?,
                run_after: r.get(7)?,
                error: r.get(8)?,
                created_at: r.get(9)?,
                updated_at: r.get(10)?,
            })
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

fn extract_jobs_of(t: &TestApp, memory_id: &str) -> Vec<JobRow> {
    jobs_of(t, memory_id)
        .into_iter()
        .filter(|j| j.kind == "extract")
        .collect()
}

/// Wait until the newest extract job of `memory_id` satisfies `pred`.
async fn wait_job(
    t: &TestApp,
    memory_id: &str,
    what: &str,
    wait: Duration,
    pred: impl Fn(&JobRow) -> bool,
) -> JobRow {
    let pred = &pred;
    wait_until(
        &format!("{what} (memory {memory_id})"),
        wait,
        || async move { extract_jobs_of(t, memory_id).pop().filter(pred) },
    )
    .await
}

async fn wait_completed(t: &TestApp, memory_id: &str) -> JobRow {
    wait_job(t, memory_id, "extract job completed", WAIT, |j| {
        j.status == "completed"
    })
    .await
}

fn ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Longest wait for pipeline work that should take milliseconds.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// SSE: the events of `/sse`, read with the client of `helpers::sse`
// ---------------------------------------------------------------------------

struct Sse {
    client: SseClient,
    seen: Vec<(String, Value)>,
}

impl Sse {
    async fn open(t: &TestApp, last_event_id: Option<&str>) -> Sse {
        let resp = open_sse(t, "/sse", None, last_event_id).await;
        assert_eq!(resp.status().as_u16(), 200);
        Sse {
            client: SseClient::new(resp),
            seen: Vec::new(),
        }
    }

    /// The first event of `kind` whose data satisfies `pred` (others are
    /// skipped).
    async fn expect(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let left = || deadline.saturating_duration_since(Instant::now());
        while let Next::Event(e) = self.client.next(left()).await {
            self.seen.push((e.kind().to_string(), e.data.clone()));
            if e.kind() == kind && pred(&e.data) {
                return e.data;
            }
        }
        panic!("no {kind} event within {WAIT:?}; saw {:?}", self.seen);
    }
}

// ---------------------------------------------------------------------------
// 1. ADD via ollama
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ollama_fact_with_no_similar_memory_is_added_by_the_pipeline_and_the_job_completes() {
    const FACT: &str = "Quokkas photograph remarkably well";
    let stub = Stub::start(|c| {
        if c.is_extract() {
            Reply::Text(facts(&[(FACT, 0.9)]))
        } else {
            Reply::Status(500)
        }
    })
    .await;
    let t = spawn_extracting("ollama", &stub).await;
    assert_eq!(pipeline_status(&t).await["mode"], "active");
    let mut sse = Sse::open(&t, None).await;

    let source_text = "holiday notes: the quokka on rottnest island posed for every camera";
    let src = t.remember(source_text).await;
    let ev = sse
        .expect("job.completed", |d| d["memoryId"] == src.as_str())
        .await;
    assert_eq!(ev["kind"], "extract", "{ev}");
    assert_eq!(ev["status"], "completed", "{ev}");
    assert_eq!(ev["attempts"], 0, "{ev}");
    let job_id = ev["id"].as_str().expect("event data.id").to_string();

    // Published after commit: the job reads as completed at once.
    let job = job_api(&t, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["memoryId"], src.as_str(), "{job}");
    assert_eq!(job["kind"], "extract", "{job}");
    assert_eq!(job["attempts"], 0, "{job}");
    assert_eq!(job["maxAttempts"], 3, "{job}");
    assert!(job["error"].is_null(), "{job}");
    let rows = extract_jobs_of(&t, &src);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].id, job_id);

    // The fact is a new memory written by the pipeline.
    let added = by_pipeline(&t).await;
    assert_eq!(added.len(), 1, "{added:?}");
    let fact = &added[0];
    assert_eq!(fact["content"], FACT, "{fact}");
    assert_eq!(fact["source_type"], "pipeline", "{fact}");
    let fact_id = fact["id"].as_str().expect("id").to_string();
    let h = history(&t, &fact_id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["event"], "created", "{h:?}");
    assert_eq!(h[0]["changedBy"], "pipeline", "{h:?}");
    // The pipeline's own write queues no extraction of itself.
    assert!(
        extract_jobs_of(&t, &fact_id).is_empty(),
        "{:?}",
        jobs_of(&t, &fact_id)
    );
    // And it is searchable.
    let r = t
        .post("/api/memory/recall", json!({"query": "quokkas photograph"}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|m| m["id"] == fact_id.as_str() && m["who"] == "pipeline"),
        "{:?}",
        r.body
    );

    let source = live_record(&t, &src).await;
    assert_eq!(source["extraction_status"], "completed", "{source}");
    assert_eq!(source["version"], 1, "the source itself is untouched");

    // The LLM saw one extraction prompt carrying the content; no decision
    // was needed (nothing similar).
    let calls = stub.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].flavor, "ollama");
    assert_eq!(calls[0].model, "stub-model");
    assert!(calls[0].prompt.starts_with(EXTRACT), "{}", calls[0].prompt);
    assert!(calls[0].prompt.contains(source_text), "{}", calls[0].prompt);

    let st = pipeline_status(&t).await;
    let q = &st["queues"]["memory"];
    assert_eq!(
        (&q["pending"], &q["leased"], &q["completed"], &q["dead"]),
        (&json!(0), &json!(0), &json!(1), &json!(0)),
        "{st}"
    );
    assert_eq!(st["stats"]["jobsCompleted"], 1, "{st}");
    assert_eq!(st["stats"]["jobsFailed"], 0, "{st}");
    assert_eq!(st["stats"]["factsAdded"], 1, "{st}");

    let r = t
        .get("/api/memory/jobs/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    drop(sse);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 2. reply variants via openai, confidence floor
// ---------------------------------------------------------------------------

#[tokio::test]
async fn openai_replies_wrapped_in_fences_think_blocks_or_prose_parse_and_low_confidence_facts_are_dropped(
) {
    const FENCED: &str = "Penguins waddle";
    const THINK: &str = "Narwhals have tusks";
    const PROSE: &str = "Axolotls regrow limbs";
    const MIXED_KEEP: &str = "Octopodes taste with suckers";
    const AT_FLOOR: &str = "Wombats produce cubic droppings";
    const LOW_A: &str = "Platypuses maybe glow";
    const LOW_B: &str = "Capybaras possibly meditate";
    let stub = Stub::start(|c| {
        if c.is_decide() {
            // Not expected (no shared words); harmless if it happens.
            return Reply::Text(decision("ADD", None, None));
        }
        let p = &c.prompt;
        Reply::Text(if p.contains("memo-fenced") {
            format!("```json\n{}\n```", facts(&[(FENCED, 0.9)]))
        } else if p.contains("memo-think") {
            format!(
                "<think>The user wants {{\"facts\": []}}? No, [one] fact.</think>\n{}",
                facts(&[(THINK, 0.8)])
            )
        } else if p.contains("memo-prose") {
            format!(
                "Sure! Here are the facts you asked for:\n{}\nLet me know if you need more.",
                facts(&[(PROSE, 0.95)])
            )
        } else if p.contains("memo-mixed") {
            facts(&[(MIXED_KEEP, 0.9), (LOW_A, 0.5), (AT_FLOOR, 0.7)])
        } else if p.contains("memo-low") {
            facts(&[(LOW_B, 0.5)])
        } else {
            facts(&[])
        })
    })
    .await;
    let t = spawn_extracting("openai", &stub).await;
    let mut ids = Vec::new();
    for tag in [
        "memo-fenced",
        "memo-think",
        "memo-prose",
        "memo-mixed",
        "memo-low",
    ] {
        ids.push(t.remember(&format!("{tag} zzz{tag}qqq")).await);
    }
    for id in &ids {
        let j = wait_completed(&t, id).await;
        assert_eq!(j.attempts, 0, "{j:?}");
        let r = live_record(&t, id).await;
        assert_eq!(r["extraction_status"], "completed", "{r}");
    }
    let mut added: Vec<String> = by_pipeline(&t)
        .await
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_string())
        .collect();
    added.sort();
    let mut want = vec![FENCED, THINK, PROSE, MIXED_KEEP, AT_FLOOR];
    want.sort();
    assert_eq!(added, want, "confidence 0.5 is dropped, 0.7 kept");
    assert!(stub.calls().iter().all(|c| c.flavor == "openai"));
    assert_eq!(stub.extract_calls().len(), 5);
    let st = pipeline_status(&t).await;
    assert_eq!(st["stats"]["factsAdded"], 5, "{st}");
    assert_eq!(st["stats"]["jobsFailed"], 0, "{st}");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 3. failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_garbage_or_http_error_reply_fails_the_job_with_a_ten_second_backoff_and_the_daemon_keeps_serving(
) {
    let stub = Stub::start(|c| {
        if c.prompt.contains("memo-http") {
            Reply::Status(500)
        } else {
            Reply::Text("I am sorry, I cannot help with that. {not json".into())
        }
    })
    .await;
    let t = spawn_extracting("ollama", &stub).await;
    let garbage = t.remember("memo-garbage about lighthouses").await;
    let http = t.remember("memo-http about windmills").await;
    for (id, err) in [(&garbage, "unusable"), (&http, "500")] {
        let j = wait_job(&t, id, "first failure", WAIT, |j| j.attempts == 1).await;
        let api = job_api(&t, &j.id).await;
        assert_eq!(api["status"], "pending", "{api}");
        assert_eq!(api["attempts"], 1, "{api}");
        assert_eq!(api["maxAttempts"], 3, "{api}");
        assert!(api["leasedAt"].is_null(), "{api}");
        let error = api["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(err),
            "error {error:?} should mention {err:?}"
        );
        let run_after = ts(api["runAfter"].as_str().expect("runAfter"));
        let failed_at = ts(api["updatedAt"].as_str().expect("updatedAt"));
        let backoff = (run_after - failed_at).num_milliseconds();
        assert!(
            (9_500..=10_500).contains(&backoff),
            "backoff after the first failure is 10 s, got {backoff} ms ({api})"
        );
        let r = live_record(&t, id).await;
        assert_ne!(r["extraction_status"], "completed", "{r}");
        assert_ne!(r["extraction_status"], "failed", "not dead yet: {r}");
    }
    // The backoff is honoured: no retry within it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(stub.calls().len(), 2, "{:?}", stub.calls());
    for id in [&garbage, &http] {
        let j = extract_jobs_of(&t, id).pop().expect("job");
        assert_eq!((j.status.as_str(), j.attempts), ("pending", 1), "{j:?}");
    }
    let st = pipeline_status(&t).await;
    assert_eq!(st["stats"]["jobsFailed"], 2, "{st}");
    assert_eq!(st["stats"]["jobsCompleted"], 0, "{st}");
    assert!(st["stats"]["lastError"].is_string(), "{st}");
    assert_eq!(st["queues"]["memory"]["pending"], 2, "{st}");
    // The daemon keeps serving (and keeps queueing).
    let other = t.remember("an unrelated note about kites").await;
    assert_eq!(live_record(&t, &other).await["id"], other.as_str());
    wait_job(&t, &other, "third failure", WAIT, |j| j.attempts == 1).await;
    assert!(by_pipeline(&t).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn an_llm_slower_than_the_extraction_timeout_fails_the_job_at_the_timeout() {
    let stub =
        Stub::start(|_| Reply::Slow(Duration::from_secs(5), facts(&[("Sloths are slow", 0.9)])))
            .await;
    let t = spawn_with(|cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.extraction.timeout_ms = 300;
    })
    .await;
    let started = Instant::now();
    let id = t.remember("memo about the sloth enclosure").await;
    let j = wait_job(&t, &id, "timeout failure", Duration::from_secs(4), |j| {
        j.attempts == 1
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2_500),
        "the 300 ms timeout should fail the job long before the stub's 5 s answer ({took:?})"
    );
    assert_eq!(j.status, "pending", "{j:?}");
    let error = j.error.clone().unwrap_or_default();
    assert!(error.contains("timed out"), "{error:?}");
    let api = job_api(&t, &j.id).await;
    let backoff = (ts(api["runAfter"].as_str().expect("runAfter"))
        - ts(api["updatedAt"].as_str().expect("updatedAt")))
    .num_milliseconds();
    assert!((9_500..=10_500).contains(&backoff), "{backoff} ms: {api}");
    // Serving goes on while the stub is still sleeping.
    assert_eq!(pipeline_status(&t).await["stats"]["jobsFailed"], 1);
    t.remember("another memo while the llm sulks").await;
    assert!(by_pipeline(&t).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn with_max_attempts_one_a_failure_is_dead_at_once_emits_job_dead_and_requeue_dead_jobs_revives_it(
) {
    const FACT: &str = "Flamingos stand single legged";
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    let stub = Stub::start(move |c| {
        if !h.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Text("<think>hmm</think> no idea".into())
        } else if c.is_extract() && c.prompt.contains("memo-first") {
            Reply::Text(facts(&[(FACT, 0.9)]))
        } else {
            Reply::Text(facts(&[]))
        }
    })
    .await;
    let t = spawn_with(|cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.max_attempts = 1;
    })
    .await;
    let mut sse = Sse::open(&t, None).await;
    let first = t.remember("memo-first flamingo lagoon survey").await;
    let ev = sse
        .expect("job.dead", |d| d["memoryId"] == first.as_str())
        .await;
    assert_eq!(ev["status"], "dead", "{ev}");
    assert_eq!(ev["attempts"], 1, "{ev}");
    assert_eq!(ev["kind"], "extract", "{ev}");
    assert!(ev["error"].as_str().is_some_and(|e| !e.is_empty()), "{ev}");
    let job_id = ev["id"].as_str().expect("id").to_string();
    let api = job_api(&t, &job_id).await;
    assert_eq!(api["status"], "dead", "{api}");
    assert_eq!(api["maxAttempts"], 1, "{api}");
    assert!(api["runAfter"].is_null(), "{api}");
    let r = live_record(&t, &first).await;
    assert_eq!(r["extraction_status"], "failed", "{r}");
    let st = pipeline_status(&t).await;
    assert_eq!(st["queues"]["memory"]["dead"], 1, "{st}");
    // It stays dead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stub.calls().len(), 1);

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = t.post("/api/repair/requeue-dead-jobs", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["action"], "requeue-dead-jobs", "{:?}", r.body);
    assert_eq!(r.body["success"], true, "{:?}", r.body);
    assert_eq!(r.body["affected"], 1, "{:?}", r.body);
    // Back in the queue (attempts reset), so it runs again and completes.
    let ev = sse
        .expect("job.completed", |d| d["memoryId"] == first.as_str())
        .await;
    assert_eq!(ev["id"], job_id.as_str(), "the same job was requeued: {ev}");
    let api = job_api(&t, &job_id).await;
    assert_eq!(api["status"], "completed", "{api}");
    assert_eq!(api["attempts"], 0, "{api}");
    let r = live_record(&t, &first).await;
    assert_eq!(r["extraction_status"], "completed", "{r}");
    assert_eq!(by_pipeline(&t).await.len(), 1);

    // The alias, on a second dead job.
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let second = t.remember("memo-second heron nesting count").await;
    sse.expect("job.dead", |d| d["memoryId"] == second.as_str())
        .await;
    let r = t.post("/api/repair/requeue-dead", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["affected"], 1, "{:?}", r.body);
    // It ran again (attempts reset, one more failure) and is dead again.
    let ev = sse
        .expect("job.dead", |d| d["memoryId"] == second.as_str())
        .await;
    assert_eq!(ev["attempts"], 1, "{ev}");
    assert_eq!(
        stub.extract_calls()
            .iter()
            .filter(|c| c.prompt.contains("memo-second"))
            .count(),
        2
    );
    drop(sse);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 4. decisions against candidates
// ---------------------------------------------------------------------------

/// A daemon where memory `target` exists (its own extraction finds
/// nothing) and the stub answers the source's extraction (a memory whose
/// content holds `memo-source`) with `fact`, and decisions with
/// `decide(target_id, call)`.
async fn decision_setup(
    target: Value,
    fact: &'static str,
    decide: impl Fn(&str, &Call) -> String + Send + Sync + 'static,
) -> (Stub, TestApp, String) {
    decision_setup_gated(target, fact, None, decide).await
}

/// As [`decision_setup`]; with a gate, the source's extraction answers
/// only once the gate hands out a permit.
async fn decision_setup_gated(
    target: Value,
    fact: &'static str,
    gate: Option<Arc<Semaphore>>,
    decide: impl Fn(&str, &Call) -> String + Send + Sync + 'static,
) -> (Stub, TestApp, String) {
    let target_text = target["content"].as_str().expect("content").to_string();
    let stub = Stub::start(|_| no_facts()).await;
    let t = spawn_extracting("ollama", &stub).await;
    let target_id = remember_as(&t, target, None).await;
    wait_completed(&t, &target_id).await;
    assert!(stub.calls()[0].prompt.contains(&target_text));
    let tid = target_id.clone();
    stub.set(move |c| {
        if c.is_decide() {
            Reply::Text(decide(&tid, c))
        } else if c.prompt.contains("memo-source") {
            let text = facts(&[(fact, 0.9)]);
            match &gate {
                Some(g) => Reply::Held(g.clone(), text),
                None => Reply::Text(text),
            }
        } else {
            no_facts()
        }
    });
    (stub, t, target_id)
}

#[tokio::test]
async fn an_update_decision_patches_the_listed_candidate_as_the_pipeline() {
    const OLD: &str = "The staging database runs postgres twelve";
    const FACT: &str = "The staging database runs postgres sixteen";
    const MERGED: &str = "The staging database runs postgres sixteen (upgraded from twelve)";
    let (stub, t, target) = decision_setup(json!({"content": OLD}), FACT, |tid, _| {
        decision("UPDATE", Some(tid), Some(MERGED))
    })
    .await;
    let src = t
        .remember("memo-source: we upgraded the staging database last night")
        .await;
    wait_completed(&t, &src).await;

    // The decision prompt listed the target (not the source) with its id.
    let d = stub.decide_calls();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].prompt.contains(FACT), "{}", d[0].prompt);
    assert!(
        d[0].prompt.contains(&format!("- [{target}] {OLD}")),
        "{}",
        d[0].prompt
    );
    assert!(
        candidates(&d[0].prompt).iter().all(|(id, _)| id != &src),
        "the source is never its own candidate: {}",
        d[0].prompt
    );

    let r = live_record(&t, &target).await;
    assert_eq!(r["content"], MERGED, "{r}");
    assert_eq!(r["version"], 2, "{r}");
    let h = history(&t, &target).await;
    let last = h.last().expect("history");
    assert_eq!(last["event"], "updated", "{h:?}");
    assert_eq!(last["changedBy"], "pipeline", "{h:?}");
    assert_eq!(last["oldContent"], OLD, "{h:?}");
    assert_eq!(last["newContent"], MERGED, "{h:?}");
    assert_eq!(live(&t).await.len(), 2, "nothing added");
    assert!(by_pipeline(&t).await.is_empty());
    // The pipeline's own content change queues no new extraction.
    let tj = extract_jobs_of(&t, &target);
    assert_eq!(tj.len(), 1, "{tj:?}");
    assert_eq!(
        live_record(&t, &src).await["extraction_status"],
        "completed"
    );
    let st = pipeline_status(&t).await;
    assert_eq!(st["stats"]["factsUpdated"], 1, "{st}");
    assert_eq!(st["stats"]["factsAdded"], 0, "{st}");
    t.stop().await;
}

#[tokio::test]
async fn a_delete_decision_soft_deletes_the_candidate() {
    const OLD: &str = "The legacy billing cron runs nightly";
    let (stub, t, target) = decision_setup(
        json!({"content": OLD}),
        "The legacy billing cron was removed",
        |tid, _| decision("DELETE", Some(tid), None),
    )
    .await;
    let src = t
        .remember("memo-source: we removed the old billing job entirely")
        .await;
    wait_completed(&t, &src).await;
    assert_eq!(stub.decide_calls().len(), 1);
    let r = record(&t, &target).await;
    assert_eq!(r.status, 404, "soft-deleted: {:?}", r.body);
    let h = history(&t, &target).await;
    let last = h.last().expect("history");
    assert_eq!(last["event"], "deleted", "{h:?}");
    assert_eq!(last["changedBy"], "pipeline", "{h:?}");
    let ids: Vec<Value> = live(&t).await.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, vec![json!(src)], "only the source is left");
    let st = pipeline_status(&t).await;
    assert_eq!(st["stats"]["factsDeleted"], 1, "{st}");
    t.stop().await;
}

#[tokio::test]
async fn a_none_decision_changes_nothing() {
    const OLD: &str = "The coffee machine on floor four is broken";
    let (stub, t, target) = decision_setup(
        json!({"content": OLD}),
        "The coffee machine on floor four is broken again",
        |_, _| decision("NONE", None, None),
    )
    .await;
    let src = t
        .remember("memo-source: complaint ticket filed about the espresso maker")
        .await;
    wait_completed(&t, &src).await;
    assert_eq!(stub.decide_calls().len(), 1);
    let r = live_record(&t, &target).await;
    assert_eq!(
        (&r["content"], &r["version"]),
        (&json!(OLD), &json!(1)),
        "{r}"
    );
    assert_eq!(history(&t, &target).await.len(), 1);
    assert_eq!(live(&t).await.len(), 2);
    assert_eq!(
        live_record(&t, &src).await["extraction_status"],
        "completed"
    );
    let st = pipeline_status(&t).await;
    let s = &st["stats"];
    assert_eq!(
        (
            &s["factsAdded"],
            &s["factsUpdated"],
            &s["factsDeleted"],
            &s["jobsCompleted"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(2)),
        "{st}"
    );
    t.stop().await;
}

#[tokio::test]
async fn an_add_decision_against_candidates_adds_a_new_memory() {
    const OLD: &str = "Team lunch is on fridays";
    const FACT: &str = "Team lunch moved to the rooftop";
    let (stub, t, target) = decision_setup(json!({"content": OLD}), FACT, |_, _| {
        decision("ADD", None, None)
    })
    .await;
    let src = t.remember("memo-source: rooftop is open again").await;
    wait_completed(&t, &src).await;
    assert_eq!(stub.decide_calls().len(), 1);
    let added = by_pipeline(&t).await;
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["content"], FACT);
    assert_eq!(live_record(&t, &target).await["version"], 1);
    t.stop().await;
}

#[tokio::test]
async fn the_source_itself_as_target_id_is_not_a_candidate_and_fails_the_job() {
    const OLD: &str = "The release train leaves every tuesday";
    let src_id = Arc::new(Mutex::new(String::new()));
    let s = src_id.clone();
    let gate = Arc::new(Semaphore::new(0));
    let (stub, t, target) = decision_setup_gated(
        json!({"content": OLD}),
        "The release train leaves every wednesday",
        Some(gate.clone()),
        move |_, _| decision("DELETE", Some(&s.lock().expect("id")), None),
    )
    .await;
    let src = t
        .remember("memo-source: release schedule shifted by one day")
        .await;
    // The source's extraction answers only once its id is known here.
    *src_id.lock().expect("id") = src.clone();
    gate.add_permits(1_000);
    let j = wait_job(&t, &src, "failed attempt", WAIT, |j| j.attempts == 1).await;
    assert_eq!(j.status, "pending", "{j:?}");
    assert!(
        j.error
            .as_deref()
            .unwrap_or_default()
            .contains("names no listed memory"),
        "{j:?}"
    );
    let d = stub.decide_calls();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(candidate_id(&d[0].prompt, OLD).is_some(), "{}", d[0].prompt);
    // Nothing was touched: the source is not deleted.
    assert_eq!(live_record(&t, &src).await["version"], 1);
    assert_eq!(live_record(&t, &target).await["version"], 1);
    assert_eq!(live(&t).await.len(), 2);
    let st = pipeline_status(&t).await;
    assert_eq!(st["stats"]["jobsFailed"], 1, "{st}");
    assert_eq!(st["stats"]["factsDeleted"], 0, "{st}");
    t.stop().await;
}

#[tokio::test]
async fn an_unknown_target_id_fails_the_job() {
    let (_stub, t, target) = decision_setup(
        json!({"content": "Parking permits renew in march"}),
        "Parking permits renew in april",
        |_, _| {
            decision(
                "UPDATE",
                Some("00000000-0000-4000-8000-000000000000"),
                Some("x"),
            )
        },
    )
    .await;
    let src = t
        .remember("memo-source: facilities email about permits")
        .await;
    let j = wait_job(&t, &src, "failed attempt", WAIT, |j| j.attempts == 1).await;
    assert_eq!(j.status, "pending", "{j:?}");
    assert_eq!(live_record(&t, &target).await["version"], 1);
    t.stop().await;
}

#[tokio::test]
async fn a_delete_decision_against_a_pinned_memory_is_refused_and_the_job_still_completes() {
    const OLD: &str = "Production deploys need two approvals";
    let (stub, t, target) = decision_setup(
        json!({"content": OLD, "pinned": true}),
        "Production deploys need one approval",
        |tid, _| decision("DELETE", Some(tid), None),
    )
    .await;
    let src = t
        .remember("memo-source: approval policy relaxed for hotfixes")
        .await;
    let j = wait_completed(&t, &src).await;
    assert_eq!(j.attempts, 0, "refused is not failed: {j:?}");
    assert!(j.error.is_none(), "{j:?}");
    assert_eq!(stub.decide_calls().len(), 1);
    let r = live_record(&t, &target).await;
    assert_eq!(r["pinned"], 1, "{r}");
    assert_eq!(r["version"], 1, "{r}");
    assert_eq!(
        live_record(&t, &src).await["extraction_status"],
        "completed"
    );
    let st = pipeline_status(&t).await;
    assert_eq!(st["stats"]["factsDeleted"], 0, "{st}");
    assert_eq!(st["stats"]["jobsFailed"], 0, "{st}");
    t.stop().await;
}

#[tokio::test]
async fn candidates_come_only_from_the_source_memorys_project() {
    const FACT: &str = "Kubernetes upgrades happen quarterly";
    let stub = Stub::start(|c| {
        if c.is_decide() {
            Reply::Text(decision("ADD", None, None))
        } else if c.prompt.contains("memo-source") {
            Reply::Text(facts(&[(FACT, 0.9)]))
        } else {
            no_facts()
        }
    })
    .await;
    let t = spawn_extracting("ollama", &stub).await;
    let beta = remember_as(
        &t,
        json!({"content": "Kubernetes upgrades happen monthly in beta", "project": "beta"}),
        None,
    )
    .await;
    wait_completed(&t, &beta).await;
    // Only a memory of another project is similar: no decision, plain ADD.
    let src = remember_as(
        &t,
        json!({"content": "memo-source: platform planning for alpha", "project": "alpha"}),
        None,
    )
    .await;
    wait_completed(&t, &src).await;
    assert!(
        stub.decide_calls().is_empty(),
        "a memory of project beta is no candidate for alpha: {:?}",
        stub.decide_calls()
    );
    let added = by_pipeline(&t).await;
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["content"], FACT);
    assert_eq!(
        added[0]["project"], "alpha",
        "the fact keeps the source's scope"
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 5. shadow mode
// ---------------------------------------------------------------------------

#[tokio::test]
async fn shadow_mode_records_proposals_in_the_source_history_and_writes_no_memory() {
    const OLD: &str = "The office wifi password rotates monthly";
    const UPD: &str = "The office wifi password rotates weekly";
    const MERGED: &str = "The office wifi password rotates weekly now";
    const NEW: &str = "Visitors sign in at reception";
    let stub = Stub::start(|_| no_facts()).await;
    let t = spawn_with(|cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.shadow_mode = true;
    })
    .await;
    let st = pipeline_status(&t).await;
    assert_eq!(st["mode"], "shadow", "{st}");
    let target = t.remember(OLD).await;
    wait_completed(&t, &target).await;
    assert_eq!(
        live_record(&t, &target).await["extraction_status"],
        "shadow"
    );
    let tid = target.clone();
    stub.set(move |c| {
        if c.is_decide() {
            Reply::Text(decision("UPDATE", Some(&tid), Some(MERGED)))
        } else if c.prompt.contains("memo-source") {
            Reply::Text(facts(&[(NEW, 0.9), (UPD, 0.8)]))
        } else {
            no_facts()
        }
    });
    let src = t.remember("memo-source: security bulletin").await;
    wait_completed(&t, &src).await;

    // Nothing was written to memories.
    assert_eq!(live(&t).await.len(), 2);
    assert!(by_pipeline(&t).await.is_empty());
    let r = live_record(&t, &target).await;
    assert_eq!(
        (&r["content"], &r["version"]),
        (&json!(OLD), &json!(1)),
        "{r}"
    );
    assert_eq!(history(&t, &target).await.len(), 1);

    // The source's history holds one proposal per fact.
    let h = history(&t, &src).await;
    let proposed: Vec<&Value> = h.iter().filter(|e| e["event"] == "proposed").collect();
    assert_eq!(proposed.len(), 2, "{h:?}");
    for p in &proposed {
        assert_eq!(p["changedBy"], "pipeline", "{p}");
        assert!(p["metadata"].is_object(), "metadata is JSON: {p}");
    }
    let add = proposed
        .iter()
        .map(|p| &p["metadata"])
        .find(|m| m["action"] == "ADD")
        .unwrap_or_else(|| panic!("an ADD proposal: {h:?}"));
    assert_eq!(add["fact"], NEW, "{add}");
    assert_eq!(add["content"], NEW, "{add}");
    assert!(add["targetId"].is_null(), "{add}");
    assert_eq!(add["confidence"], 0.9, "{add}");
    assert!(add["reason"].is_string(), "{add}");
    let upd = proposed
        .iter()
        .map(|p| &p["metadata"])
        .find(|m| m["action"] == "UPDATE")
        .unwrap_or_else(|| panic!("an UPDATE proposal: {h:?}"));
    assert_eq!(upd["targetId"], target.as_str(), "{upd}");
    assert_eq!(upd["content"], MERGED, "{upd}");
    assert_eq!(upd["fact"], UPD, "{upd}");
    assert_eq!(upd["confidence"], 0.8, "{upd}");
    assert_eq!(upd["reason"], "stub says UPDATE", "{upd}");

    assert_eq!(live_record(&t, &src).await["extraction_status"], "shadow");
    let st = pipeline_status(&t).await;
    assert_eq!(st["mode"], "shadow", "{st}");
    assert_eq!(st["stats"]["proposals"], 2, "{st}");
    assert_eq!(st["stats"]["factsAdded"], 0, "{st}");
    assert_eq!(st["stats"]["factsUpdated"], 0, "{st}");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 6. kill switch
// ---------------------------------------------------------------------------

#[tokio::test]
async fn with_mutations_frozen_pending_extract_jobs_are_not_leased() {
    const FACT: &str = "Glaciers calve icebergs";
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().to_path_buf();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    let stub = Stub::start(move |c| {
        if !h.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Text("garbage".into())
        } else if c.prompt.contains("memo-a") {
            Reply::Text(facts(&[(FACT, 0.9)]))
        } else {
            no_facts()
        }
    })
    .await;

    // Seed two dead jobs (one attempt each).
    let t = spawn_in(ws.clone(), |cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.max_attempts = 1;
    })
    .await;
    let a = t.remember("memo-a glacier field trip").await;
    let b = t.remember("memo-b fjord kayaking").await;
    for id in [&a, &b] {
        wait_job(&t, id, "dead", WAIT, |j| j.status == "dead").await;
    }
    t.stop().await;

    // Requeue them while extraction is disabled: they wait, eligible now.
    let t = spawn_in(ws.clone(), |cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.enabled = false;
    })
    .await;
    assert_eq!(pipeline_status(&t).await["mode"], "embeddings-only");
    let r = t.post("/api/repair/requeue-dead-jobs", json!({})).await;
    assert_eq!(r.body["affected"], 2, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stub.calls().len(), 2, "disabled extraction stays idle");
    t.stop().await;

    // Frozen: the kill switch leases nothing.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let t = spawn_in(ws.clone(), |cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.mutations_frozen = true;
    })
    .await;
    let st = pipeline_status(&t).await;
    assert_eq!(st["mode"], "frozen", "{st}");
    let r = t
        .post("/api/memory/remember", json!({"content": "blocked"}))
        .await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    // 30+ poll intervals.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for id in [&a, &b] {
        let j = extract_jobs_of(&t, id).pop().expect("job");
        assert_eq!(j.status, "pending", "{j:?}");
        assert!(j.leased_at.is_none(), "{j:?}");
        assert!(j.run_after.is_none(), "eligible all along: {j:?}");
    }
    assert_eq!(stub.calls().len(), 2, "{:?}", stub.calls());
    let st = pipeline_status(&t).await;
    assert_eq!(st["queues"]["memory"]["pending"], 2, "{st}");
    assert_eq!(st["queues"]["memory"]["leased"], 0, "{st}");
    t.stop().await;

    // Control: thawed, the same jobs run.
    let t = spawn_in(ws.clone(), |cfg| extraction(cfg, "ollama", &stub)).await;
    for id in [&a, &b] {
        wait_completed(&t, id).await;
    }
    assert_eq!(stub.calls().len(), 4);
    assert_eq!(by_pipeline(&t).await.len(), 1);
    t.stop().await;
    drop(dir);
}

// ---------------------------------------------------------------------------
// 7. restart mid-job, stale leases, release-leases
// ---------------------------------------------------------------------------

/// How long `TestApp::stop` may take with an LLM call in flight before it
/// counts as hanging.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// Stop `t`, bounded; returns how long it took (None: it did not finish
/// within 45 s).
async fn timed_stop(t: TestApp) -> (Duration, bool) {
    let started = Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(45), t.stop())
        .await
        .is_ok();
    (started.elapsed(), done)
}

/// A clean stop hands an interrupted job back without counting an attempt;
/// a lease left behind by a crashed daemon is reaped after the restart as
/// one failed attempt. Either way the work completes.
#[tokio::test]
async fn a_job_leased_at_a_clean_stop_is_released_a_crashed_lease_is_reaped_and_both_complete() {
    const FACT: &str = "Lighthouses use fresnel lenses";
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().to_path_buf();
    let never = Arc::new(Semaphore::new(0));
    let n = never.clone();
    let hung = Stub::start(move |_| Reply::Held(n.clone(), facts(&[(FACT, 0.9)]))).await;
    let t = spawn_in(ws.clone(), |cfg| {
        extraction(cfg, "ollama", &hung);
        cfg.settings.memory.pipeline_v2.lease_timeout_seconds = 1;
        cfg.settings.memory.pipeline_v2.extraction.timeout_ms = 600_000;
    })
    .await;
    let src = t
        .remember("memo about the lighthouse keeper's logbook")
        .await;
    let leased = wait_job(&t, &src, "leased", WAIT, |j| j.status == "leased").await;
    wait_until("the LLM call", WAIT, || async {
        (hung.calls().len() == 1).then_some(())
    })
    .await;
    let (stop_took, stopped) = timed_stop(t).await;
    assert!(stopped, "the daemon did not stop within 45 s");
    println!("stop with an LLM call in flight took {stop_took:?}");
    // The clean stop released the lease: pending, attempts unchanged.
    let (status, attempts, leased_at): (String, i64, Option<String>) = open_db(&ws)
        .query_row(
            "SELECT status, attempts, leased_at FROM memory_jobs WHERE id = ?1",
            [&leased.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the job row");
    assert_eq!(
        (status.as_str(), attempts, leased_at),
        ("pending", 0, None),
        "an interrupted job is not a failed one"
    );
    // Now leave the lease a crashed daemon would have left (the reaper
    // runs on the first round after the start, then every 30 s).
    leave_stale_lease(&ws, &leased.id);

    let healthy = Stub::start(|c| {
        if c.is_extract() {
            Reply::Text(facts(&[(FACT, 0.9)]))
        } else {
            Reply::Text(decision("ADD", None, None))
        }
    })
    .await;
    let t = spawn_in(ws.clone(), |cfg| {
        extraction(cfg, "ollama", &healthy);
        cfg.settings.memory.pipeline_v2.lease_timeout_seconds = 1;
    })
    .await;
    // The stale lease is taken back as one failed attempt.
    let j = wait_job(&t, &src, "reaped", Duration::from_secs(5), |j| {
        j.attempts >= 1
    })
    .await;
    assert_eq!(j.id, leased.id, "{j:?}");
    assert_eq!((j.status.as_str(), j.attempts), ("pending", 1), "{j:?}");
    assert!(j.leased_at.is_none(), "{j:?}");
    assert!(
        j.error.as_deref().unwrap_or_default().contains("lease"),
        "{j:?}"
    );
    let backoff =
        (ts(j.run_after.as_deref().expect("run_after")) - ts(&j.updated_at)).num_milliseconds();
    assert!((9_500..=10_500).contains(&backoff), "{backoff} ms: {j:?}");
    // After the backoff it runs and completes: the work survived.
    let done = wait_job(
        &t,
        &src,
        "completed after backoff",
        Duration::from_secs(15),
        |j| j.status == "completed",
    )
    .await;
    assert_eq!(done.id, leased.id);
    assert_eq!(done.attempts, 1, "{done:?}");
    assert_eq!(healthy.extract_calls().len(), 1);
    let added = by_pipeline(&t).await;
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["content"], FACT);
    assert_eq!(
        live_record(&t, &src).await["extraction_status"],
        "completed"
    );
    t.stop().await;

    // Stopping abandons the in-flight LLM call (the lease is left for the
    // reaper) instead of waiting for it.
    assert!(
        stop_took < STOP_BOUND,
        "stopping with an LLM call in flight took {stop_took:?} (bound {STOP_BOUND:?})"
    );
    drop(dir);
}

#[tokio::test]
async fn a_stale_lease_reaped_at_max_attempts_is_dead_announced_and_marks_extraction_failed() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().to_path_buf();
    let never = Arc::new(Semaphore::new(0));
    let n = never.clone();
    let hung = Stub::start(move |_| Reply::Held(n.clone(), facts(&[]))).await;
    let tweak = |cfg: &mut Config, stub: &Stub| {
        extraction(cfg, "ollama", stub);
        let p = &mut cfg.settings.memory.pipeline_v2;
        p.lease_timeout_seconds = 1;
        p.extraction.timeout_ms = 600_000;
        p.max_attempts = 1;
    };
    let t = spawn_in(ws.clone(), |cfg| tweak(cfg, &hung)).await;
    let src = t.remember("memo about the abandoned mine shaft").await;
    let leased = wait_job(&t, &src, "leased", WAIT, |j| j.status == "leased").await;
    wait_until("the LLM call", WAIT, || async {
        (hung.calls().len() == 1).then_some(())
    })
    .await;
    let (_, stopped) = timed_stop(t).await;
    assert!(stopped, "the daemon did not stop within 45 s");
    // A clean stop released it; leave the lease a crash would have left.
    leave_stale_lease(&ws, &leased.id);

    let healthy = Stub::start(|_| no_facts()).await;
    let t = spawn_in(ws.clone(), |cfg| tweak(cfg, &healthy)).await;
    // The reaper runs on the first round, maybe before this subscription:
    // replay the ring from the start.
    let mut sse = Sse::open(&t, Some("0")).await;
    let j = wait_job(&t, &src, "dead", Duration::from_secs(5), |j| {
        j.status == "dead"
    })
    .await;
    assert_eq!(
        (j.id.as_str(), j.attempts),
        (leased.id.as_str(), 1),
        "{j:?}"
    );
    let ev = sse
        .expect("job.dead", |d| d["memoryId"] == src.as_str())
        .await;
    assert_eq!(ev["id"], leased.id.as_str(), "{ev}");
    assert!(healthy.calls().is_empty(), "a dead job is not run");
    // The reaper's path to dead marks the memory 'failed' too.
    let r = live_record(&t, &src).await;
    assert_eq!(r["extraction_status"], "failed", "{r}");
    drop(sse);
    t.stop().await;
    drop(dir);
}

#[tokio::test]
async fn release_leases_puts_a_hung_job_back_and_the_rerun_does_not_duplicate_the_fact() {
    const FACT: &str = "Beekeepers wear veils";
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let stub = Stub::start(move |c| {
        if c.is_decide() {
            Reply::Text(decision("ADD", None, None))
        } else if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            Reply::Held(g.clone(), facts(&[(FACT, 0.9)]))
        } else {
            Reply::Text(facts(&[(FACT, 0.9)]))
        }
    })
    .await;
    let t = spawn_with(|cfg| {
        extraction(cfg, "ollama", &stub);
        cfg.settings.memory.pipeline_v2.extraction.timeout_ms = 60_000;
    })
    .await;
    let src = t.remember("memo from the apiary open day").await;
    let leased = wait_job(&t, &src, "leased", WAIT, |j| j.status == "leased").await;
    wait_until("the LLM call", WAIT, || async {
        (stub.calls().len() == 1).then_some(())
    })
    .await;
    let r = t.post("/api/repair/release-leases", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["action"], "release-leases", "{:?}", r.body);
    assert_eq!(r.body["success"], true, "{:?}", r.body);
    assert_eq!(r.body["affected"], 1, "{:?}", r.body);
    let api = job_api(&t, &leased.id).await;
    assert_eq!(api["status"], "pending", "{api}");
    assert!(api["leasedAt"].is_null(), "{api}");
    assert_eq!(api["attempts"], 0, "a release is not a failure: {api}");

    // The held call answers; the job runs again and completes once.
    gate.add_permits(1_000);
    let done = wait_completed(&t, &src).await;
    assert_eq!(done.id, leased.id);
    assert!(stub.extract_calls().len() >= 2, "{:?}", stub.calls());
    let added = by_pipeline(&t).await;
    assert_eq!(
        added.len(),
        1,
        "the rerun does not duplicate the fact: {added:?}"
    );
    assert_eq!(
        live_record(&t, &src).await["extraction_status"],
        "completed"
    );
    let st = pipeline_status(&t).await;
    assert_eq!(st["queues"]["memory"]["completed"], 1, "{st}");
    // The released run's completion is refused by the store (the job was
    // no longer leased) and not counted.
    assert_eq!(
        st["stats"]["jobsCompleted"], 1,
        "one job completed once: {st}"
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 8. enqueue dedupe, re-extraction on content change
// ---------------------------------------------------------------------------

#[tokio::test]
async fn content_changes_while_an_extract_job_is_pending_queue_no_second_job() {
    let stub = Stub::start(|_| Reply::Text("nope".into())).await;
    let t = spawn_extracting("ollama", &stub).await;
    let src = t.remember("memo draft one about tidal pools").await;
    // One failure parks the job as pending for 10 s.
    let pending = wait_job(&t, &src, "pending after a failure", WAIT, |j| {
        j.attempts == 1 && j.status == "pending"
    })
    .await;
    let (a, b) = tokio::join!(
        patch(
            &t,
            &src,
            json!({"content": "memo draft two about tidal pools", "reason": "edit"})
        ),
        patch(
            &t,
            &src,
            json!({"content": "memo draft three about tidal pools", "reason": "edit"})
        ),
    );
    for r in [&a, &b] {
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["status"], "updated", "{:?}", r.body);
    }
    let jobs = extract_jobs_of(&t, &src);
    let active: Vec<&JobRow> = jobs
        .iter()
        .filter(|j| j.status == "pending" || j.status == "leased")
        .collect();
    assert_eq!(
        active.len(),
        1,
        "one active extract job per memory: {jobs:?}"
    );
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(active[0].id, pending.id);
    assert_eq!(live_record(&t, &src).await["version"], 3);
    t.stop().await;
}

#[tokio::test]
async fn a_content_change_after_extraction_queues_a_fresh_job_that_sees_the_new_content() {
    let stub = Stub::start(|_| no_facts()).await;
    let t = spawn_extracting("ollama", &stub).await;
    let src = t.remember("memo version one: herons").await;
    let first = wait_completed(&t, &src).await;
    // Not a content change: no new job.
    let r = patch(&t, &src, json!({"importance": 0.3, "reason": "tune"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(extract_jobs_of(&t, &src).len(), 1);
    // A content change: a new job, run against the new text.
    let r = patch(
        &t,
        &src,
        json!({"content": "memo version two: egrets", "reason": "edit"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let second = wait_completed(&t, &src).await;
    assert_ne!(second.id, first.id);
    assert_eq!(extract_jobs_of(&t, &src).len(), 2);
    let calls = stub.extract_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[1].prompt.contains("memo version two: egrets"),
        "{}",
        calls[1].prompt
    );
    assert_eq!(
        live_record(&t, &src).await["extraction_status"],
        "completed"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_session_transcript_is_summarised_into_a_summary_row_and_a_session_summary_memory() {
    const SUMMARY: &str = "I fixed the login bug: the session cookie TTL is now one hour.";
    let stub = Stub::start(|c| {
        if c.prompt
            .starts_with("You are summarising a coding-agent session")
        {
            Reply::Text(format!("<think>short</think>{SUMMARY}"))
        } else {
            no_facts()
        }
    })
    .await;
    let t = spawn_extracting("ollama", &stub).await;
    let path = t.workspace.join("session.jsonl");
    let lines: Vec<String> = (0..30)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({ "type": role, "message": { "role": role, "content": format!("turn {i} about the login cookie bug") } })
                .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).expect("transcript");
    let r = t
        .post(
            "/api/hooks/session-end",
            json!({ "harness": "claude-code", "sessionId": "sum-1", "transcriptPath": path, "cwd": "/repo" }),
        )
        .await;
    assert_eq!(r.body["queued"], true, "{:?}", r.body);
    let rows = wait_until("the summary row", Duration::from_secs(10), || async {
        let r = t.get("/api/sessions/summaries?project=/repo").await;
        (r.body["total"] == 1).then_some(r.body)
    })
    .await;
    let row = &rows["summaries"][0];
    assert_eq!(row["content"], SUMMARY);
    assert_eq!(row["session_key"], "sum-1");
    assert_eq!(row["harness"], "claude-code");
    assert_eq!(row["kind"], "session");
    assert_eq!(row["childCount"], 0);
    let prompt = stub
        .calls()
        .into_iter()
        .find(|c| c.prompt.starts_with("You are summarising"))
        .expect("a summary call")
        .prompt;
    assert!(
        prompt.contains("User: turn 0 about the login cookie bug\nAssistant: turn 1"),
        "{prompt}"
    );
    let list = t.get("/api/memories?type=session_summary").await;
    let mems = list.body["memories"].as_array().expect("memories").clone();
    assert_eq!(mems.len(), 1, "{:?}", list.body);
    assert_eq!(mems[0]["content"], SUMMARY);
    assert_eq!(mems[0]["project"], "/repo");
    t.stop().await;
}
