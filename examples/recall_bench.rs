//! Retrieval benchmark on a LoCoMo-format conversational dataset.
//!
//! Starts a daemon on a temp workspace (or uses `--url` of a running one),
//! stores every turn of every conversation as one memory through the real
//! HTTP API (project = the conversation, `who` = the speaker), waits until
//! every memory has its vector, then asks every question of categories 1–4
//! through `POST /api/memory/recall` with the conversation as `project`.
//! Prints recall@5/@10 and hit@5/@10 overall and per category, the recall
//! latency, a second pass over the same questions (usage must not move
//! rank), and the same figures for an in-process BM25 reference (any query
//! term, k1 0.9, b 0.4, stop words dropped, no stemming, speaker and text),
//! so a regression
//! of the daemon's ranking is obvious next to it.
//!
//! usage:
//!   cargo run --release --example recall_bench -- --data ../shared/data/locomo-dev
//!       [--provider native|none] [--model DIR] [--url http://HOST:PORT] [--token T]
//!       [--alpha A] [--passes N] [--json FILE]
//!
//! The native provider loads the model from `--model` (default
//! `target/models/all-MiniLM-L6-v2`, what `signet model fetch` writes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Recall quality and latency on a LoCoMo-format dataset")]
struct Args {
    /// Folder of conversation files (`*.json`, LoCoMo format).
    #[arg(long)]
    data: PathBuf,
    /// Embedding provider of the daemon started here: native or none.
    #[arg(long, default_value = "native")]
    provider: String,
    /// Model folder for the native provider.
    #[arg(long, default_value = "target/models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Use this running daemon instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Bearer token for `--url` in team mode.
    #[arg(long, env = "SIGNET_TOKEN")]
    token: Option<String>,
    /// `search.alpha` of the daemon started here.
    #[arg(long)]
    alpha: Option<f64>,
    /// Passes over the questions (the second shows drift with use).
    #[arg(long, default_value_t = 2)]
    passes: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One turn of a conversation.
struct Turn {
    dia_id: String,
    speaker: String,
    text: String,
}

/// One question with the turns that answer it.
struct Question {
    text: String,
    evidence: Vec<String>,
    category: u8,
}

struct Conversation {
    project: String,
    turns: Vec<Turn>,
    questions: Vec<Question>,
}

fn load(dir: &Path) -> anyhow::Result<Vec<Conversation>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&f)?)?;
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("conv");
        let mut sessions: Vec<(u32, &Vec<Value>)> = v
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| {
                        let n = k.strip_prefix("session_")?.parse::<u32>().ok()?;
                        Some((n, v.as_array()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        sessions.sort_by_key(|s| s.0);
        let turns = sessions
            .iter()
            .flat_map(|(_, turns)| turns.iter())
            .filter_map(|t| {
                Some(Turn {
                    dia_id: t["dia_id"].as_str()?.to_string(),
                    speaker: t["speaker"].as_str()?.to_string(),
                    text: t["text"].as_str()?.to_string(),
                })
            })
            .collect();
        let questions = v["qa"]
            .as_array()
            .map(|qa| {
                qa.iter()
                    .filter_map(|q| {
                        let category = q["category"].as_u64()? as u8;
                        if !(1..=4).contains(&category) {
                            return None;
                        }
                        Some(Question {
                            text: q["question"].as_str()?.to_string(),
                            evidence: q["evidence"]
                                .as_array()?
                                .iter()
                                .filter_map(|e| e.as_str().map(str::to_string))
                                .collect(),
                            category,
                        })
                    })
                    .filter(|q| !q.evidence.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.push(Conversation {
            project: format!("locomo-{stem}"),
            turns,
            questions,
        });
    }
    Ok(out)
}

/// Recall@k, hit@k per category, summed.
#[derive(Default, Clone)]
struct Tally {
    n: usize,
    recall5: f64,
    recall10: f64,
    hit5: f64,
    hit10: f64,
}

impl Tally {
    fn add(&mut self, ranked: &[Vec<String>], evidence: &[String]) {
        let ev: HashSet<&String> = evidence.iter().collect();
        let found = |k: usize| -> usize {
            let top: HashSet<&String> = ranked.iter().take(k).flatten().collect();
            ev.iter().filter(|e| top.contains(*e)).count()
        };
        let (f5, f10) = (found(5), found(10));
        self.n += 1;
        self.recall5 += f5 as f64 / ev.len() as f64;
        self.recall10 += f10 as f64 / ev.len() as f64;
        self.hit5 += (f5 > 0) as u8 as f64;
        self.hit10 += (f10 > 0) as u8 as f64;
    }

    fn mean(&self) -> [f64; 4] {
        let n = self.n.max(1) as f64;
        [
            self.recall5 / n,
            self.recall10 / n,
            self.hit5 / n,
            self.hit10 / n,
        ]
    }
}

/// Figures of one ranking over all questions.
#[derive(Default, Clone)]
struct Figures {
    all: Tally,
    by_category: BTreeMap<u8, Tally>,
    latencies_ms: Vec<f64>,
}

impl Figures {
    fn add(&mut self, category: u8, ranked: &[Vec<String>], evidence: &[String]) {
        self.all.add(ranked, evidence);
        self.by_category
            .entry(category)
            .or_default()
            .add(ranked, evidence);
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut l = self.latencies_ms.clone();
        if l.is_empty() {
            return 0.0;
        }
        l.sort_by(f64::total_cmp);
        l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1]
    }

    fn print(&self, name: &str) {
        let row = |label: &str, t: &Tally| {
            let [r5, r10, h5, h10] = t.mean();
            println!(
                "  {label:<14} n={:<4} recall@5 {r5:.3}  recall@10 {r10:.3}  hit@5 {h5:.3}  hit@10 {h10:.3}",
                t.n
            );
        };
        println!("{name}");
        row("all", &self.all);
        for (c, t) in &self.by_category {
            let label = match c {
                1 => "1 multi-hop",
                2 => "2 temporal",
                3 => "3 open-domain",
                _ => "4 single-hop",
            };
            row(label, t);
        }
        if !self.latencies_ms.is_empty() {
            println!(
                "  latency p50 {:.2} ms  p95 {:.2} ms  max {:.2} ms",
                self.percentile(0.5),
                self.percentile(0.95),
                self.percentile(1.0)
            );
        }
    }

    fn to_json(&self) -> Value {
        let t = |t: &Tally| {
            let [r5, r10, h5, h10] = t.mean();
            json!({"n": t.n, "recall@5": r5, "recall@10": r10, "hit@5": h5, "hit@10": h10})
        };
        json!({
            "all": t(&self.all),
            "byCategory": self.by_category.iter().map(|(c, x)| (c.to_string(), t(x))).collect::<serde_json::Map<_, _>>(),
            "latencyMs": {"p50": self.percentile(0.5), "p95": self.percentile(0.95)},
        })
    }
}

/// The in-process BM25 reference: any query term, k1 0.9, b 0.4, over
/// the speaker and the text of each turn.
struct Bm25 {
    docs: Vec<(String, HashMap<String, f64>, f64)>,
    df: HashMap<String, f64>,
    avg_len: f64,
}

fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 2 && !signet::store::fts::is_stop_word(w))
        .map(str::to_string)
        .collect()
}

impl Bm25 {
    fn new(turns: &[Turn]) -> Self {
        let mut df: HashMap<String, f64> = HashMap::new();
        let docs: Vec<_> = turns
            .iter()
            .map(|t| {
                // The speaker is part of what the daemon indexes too.
                let toks = tokens(&format!("{} {}", t.speaker, t.text));
                let mut tf: HashMap<String, f64> = HashMap::new();
                for w in &toks {
                    *tf.entry(w.clone()).or_default() += 1.0;
                }
                for w in tf.keys() {
                    *df.entry(w.clone()).or_default() += 1.0;
                }
                (t.dia_id.clone(), tf, toks.len() as f64)
            })
            .collect();
        let avg_len = docs.iter().map(|d| d.2).sum::<f64>() / docs.len().max(1) as f64;
        Bm25 { docs, df, avg_len }
    }

    fn rank(&self, query: &str, k: usize) -> Vec<Vec<String>> {
        let (k1, b) = (0.9, 0.4);
        let n = self.docs.len() as f64;
        let q: HashSet<String> = tokens(query).into_iter().collect();
        let mut scored: Vec<(f64, &String)> = self
            .docs
            .iter()
            .map(|(id, tf, len)| {
                let s: f64 = q
                    .iter()
                    .filter_map(|w| {
                        let f = *tf.get(w)?;
                        let df = self.df.get(w).copied().unwrap_or(0.0);
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        Some(idf * f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * len / self.avg_len)))
                    })
                    .sum();
                (s, id)
            })
            .filter(|(s, _)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(k)
            .map(|(_, id)| vec![id.clone()])
            .collect()
    }
}

/// A small HTTP client of the daemon.
struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{method} {path}: {status} {v}");
        Ok(v)
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let convs = load(&args.data)?;
    anyhow::ensure!(
        !convs.is_empty(),
        "no *.json conversations in {:?}",
        args.data
    );
    let turns: usize = convs.iter().map(|c| c.turns.len()).sum();
    let questions: usize = convs.iter().map(|c| c.questions.len()).sum();
    println!(
        "{} conversations, {turns} turns, {questions} questions (categories 1-4)",
        convs.len()
    );

    // The daemon: a running one, or one on a temp workspace here.
    let dir = tempfile::tempdir()?;
    let (base, _app, stop) = match &args.url {
        Some(u) => (u.trim_end_matches('/').to_string(), None, None),
        None => {
            let mut config = signet::config::Config::for_workspace(dir.path());
            let e = &mut config.settings.embedding;
            e.provider = args.provider.clone();
            e.auto_fetch = false;
            if args.provider == "native" {
                e.model_path = Some(args.model.to_string_lossy().into_owned());
            }
            // Every recall is computed (no result cache): the latency is
            // the search path's, and a second pass really re-ranks.
            config.settings.server.recall_cache_entries = 0;
            if let Some(a) = args.alpha {
                config.settings.search.alpha = a;
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let app = signet::app::App::start(config, listener, async move {
                let _ = rx.await;
            })
            .await?;
            (format!("http://{}", app.addr), Some(app), Some(tx))
        }
    };
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token: args.token.clone(),
    };

    // Store every turn, in order, one conversation at a time. Identical
    // turns of one conversation are deduplicated by the daemon: the id maps
    // to every turn it stands for.
    let started = Instant::now();
    let mut turns_of: HashMap<String, Vec<String>> = HashMap::new();
    for c in &convs {
        for t in &c.turns {
            let r = client
                .call(
                    "POST",
                    "/api/memory/remember",
                    Some(json!({"content": t.text, "who": t.speaker, "project": c.project})),
                )
                .await?;
            let id = r["id"].as_str().unwrap_or_default().to_string();
            turns_of.entry(id).or_default().push(t.dia_id.clone());
        }
    }
    println!(
        "stored {turns} turns as {} memories in {:.1} s",
        turns_of.len(),
        started.elapsed().as_secs_f64()
    );
    if args.provider != "none" || args.url.is_some() {
        let started = Instant::now();
        loop {
            let s = client.call("GET", "/api/embeddings/status", None).await?;
            let pending = s["pending"].as_i64().unwrap_or(-1);
            let ready = s["index"]["vectors"].as_i64() >= s["embedded"].as_i64();
            if pending == 0 && ready {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(1800),
                "embeddings not done after 30 min: {s}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!(
            "embeddings ready after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let mut passes: Vec<Figures> = Vec::new();
    let mut method = String::new();
    for _ in 0..args.passes.max(1) {
        let mut f = Figures::default();
        for c in &convs {
            for q in &c.questions {
                let t = Instant::now();
                let r = client
                    .call(
                        "POST",
                        "/api/memory/recall",
                        Some(json!({"query": q.text, "project": c.project, "limit": 10})),
                    )
                    .await?;
                f.latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                method = r["method"].as_str().unwrap_or_default().to_string();
                let ranked: Vec<Vec<String>> = r["results"]
                    .as_array()
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|x| x["id"].as_str())
                            .map(|id| turns_of.get(id).cloned().unwrap_or_default())
                            .collect()
                    })
                    .unwrap_or_default();
                f.add(q.category, &ranked, &q.evidence);
            }
        }
        passes.push(f);
    }
    let mut reference = Figures::default();
    for c in &convs {
        let bm25 = Bm25::new(&c.turns);
        for q in &c.questions {
            reference.add(q.category, &bm25.rank(&q.text, 10), &q.evidence);
        }
    }

    println!();
    for (i, f) in passes.iter().enumerate() {
        f.print(&format!("daemon recall (method {method}), pass {}", i + 1));
    }
    if passes.len() > 1 {
        let (a, b) = (passes[0].all.mean(), passes[passes.len() - 1].all.mean());
        println!(
            "  drift, last pass - first: recall@5 {:+.3}  recall@10 {:+.3}",
            b[0] - a[0],
            b[1] - a[1]
        );
    }
    reference
        .print("reference: in-process BM25 (any term, k1 0.9, b 0.4, no stemming, speaker + text)");
    if let Some(path) = &args.json {
        let out = json!({
            "method": method,
            "passes": passes.iter().map(Figures::to_json).collect::<Vec<_>>(),
            "referenceBm25": reference.to_json(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
    }
    if let Some(tx) = stop {
        let _ = tx.send(());
    }
    if let Some(app) = _app {
        app.wait().await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
