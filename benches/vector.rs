//! Criterion benches of semantic recall at 100,000 memories × 384 dims:
//! the in-memory index scan against a brute-force `vec0` kNN, the native
//! model's query and batch embeddings, and hybrid recall end to end
//! (query embedding of a new query, and a repeated one) with p50/p95/p99
//! printed from a separate timed loop.
//!
//! Needs the model files: `signet model fetch --dest target/models/all-MiniLM-L6-v2`
//! (or `SIGNET_MODEL_DIR`). The 100k memories get synthetic unit vectors
//! (embedding 100k texts with the real model would take minutes); the scan
//! cost does not depend on the values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use signet::actors::store_writer::{WriteOp, WriterMsg};
use signet::app::Engine;
use signet::config::Config;
use signet::embed::native::NativeEmbedder;
use signet::memory::{Caller, RecallRequest, RememberRequest};
use signet::store::vec::{to_blob, NewVector, Ranked, VectorIndex};

const N: usize = 100_000;
const DIMS: usize = 384;

fn model_dir() -> std::path::PathBuf {
    std::env::var_os("SIGNET_MODEL_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/models/all-MiniLM-L6-v2")
        })
}

fn unit_vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..DIMS).map(|_| rng.gen_range(-1.0_f32..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn scan_vs_vec0(c: &mut Criterion) {
    let vectors = unit_vectors(N, 1);
    let q = unit_vectors(1, 2).remove(0);
    let index = VectorIndex::new(DIMS);
    for (i, v) in vectors.iter().enumerate() {
        index.upsert(i as i64 + 1, v);
    }
    let mut g = c.benchmark_group("vector_leg_100k");
    g.sample_size(20);
    g.bench_function("memory_index_int8_top40", |b| {
        b.iter(|| index.top(&q, 40).len())
    });
    g.bench_function("memory_index_int8_full_ranking", |b| {
        b.iter(|| {
            let mut r = Ranked::new(index.scores(&q));
            r.take(40).len()
        })
    });
    signet::store::register_vec_extension();
    let conn = rusqlite::Connection::open_in_memory().expect("db");
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIMS}] distance_metric=cosine)"
    ))
    .expect("vec0");
    {
        let tx = conn.unchecked_transaction().expect("tx");
        let mut st = tx
            .prepare("INSERT INTO v(rowid, embedding) VALUES (?1, ?2)")
            .expect("stmt");
        for (i, v) in vectors.iter().enumerate() {
            st.execute(rusqlite::params![i as i64 + 1, to_blob(v)])
                .expect("insert");
        }
        drop(st);
        tx.commit().expect("commit");
    }
    let qb = to_blob(&q);
    g.bench_function("vec0_knn_top20", |b| {
        b.iter(|| {
            let mut st = conn
                .prepare_cached("SELECT rowid, distance FROM v WHERE embedding MATCH ?1 AND k = 40")
                .expect("knn");
            let rows: Vec<(i64, f64)> = st
                .query_map([&qb], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            rows.len()
        })
    });
    g.finish();
}

fn native_embedding(c: &mut Criterion) {
    let model = NativeEmbedder::load(&model_dir()).expect("model (run `signet model fetch`)");
    let mut g = c.benchmark_group("native_embed");
    g.sample_size(20);
    let mut i = 0u64;
    g.bench_function("query_one_new_text", |b| {
        b.iter(|| {
            i += 1;
            model
                .embed_blocking(&[format!("which database does the staging cluster {i} use")])
                .expect("embed")
        })
    });
    let batch: Vec<String> = (0..32)
        .map(|k| format!("memory number {k}: the team agreed to deploy the billing service on thursdays after review"))
        .collect();
    g.throughput(Throughput::Elements(32));
    g.bench_function("backfill_batch_32", |b| {
        b.iter(|| model.embed_blocking(&batch).expect("embed"))
    });
    g.finish();
}

fn percentiles(mut t: Vec<Duration>) -> String {
    t.sort();
    let p = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)].as_secs_f64() * 1e3;
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        p(0.50),
        p(0.95),
        p(0.99)
    )
}

fn hybrid_recall(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = Config::for_workspace(dir.path());
    cfg.settings.server.recall_cache_entries = 0;
    cfg.settings.embedding.model_path = Some(model_dir().display().to_string());
    cfg.settings.embedding.auto_fetch = false;
    let engine = rt.block_on(Engine::start(Arc::new(cfg))).expect("engine");
    let m = engine.memories.clone();
    let caller = Caller::default();
    rt.block_on(async {
        // 100k memories, 64 in flight at a time.
        let words = [
            "deploy", "billing", "postgres", "review", "latency", "cache", "tabs", "kafka",
        ];
        let mut next = 0usize;
        while next < N {
            let mut set = tokio::task::JoinSet::new();
            for i in next..(next + 64).min(N) {
                let m = m.clone();
                let c = caller.clone();
                let text = format!(
                    "note {i}: the {} team discussed {} and {} for service {}",
                    words[i % 8],
                    words[(i / 8) % 8],
                    words[(i / 64) % 8],
                    i % 977
                );
                set.spawn(async move {
                    m.remember(
                        &c,
                        RememberRequest {
                            content: Some(text),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("remember")
                });
            }
            set.join_all().await;
            next += 64;
        }
        // Synthetic vectors for all of them, through the writer.
        let rows: Vec<(String, String)> = engine
            .reads
            .read(|c| {
                let mut st = c.prepare("SELECT id, content_hash FROM memories")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .expect("ids");
        let vectors = unit_vectors(rows.len(), 3);
        for chunk in rows.iter().zip(vectors).collect::<Vec<_>>().chunks(1000) {
            let items: Vec<NewVector> = chunk
                .iter()
                .map(|((id, hash), v)| NewVector {
                    memory_id: id.clone(),
                    content_hash: hash.clone(),
                    vector: v.clone(),
                })
                .collect();
            engine
                .registry
                .call_writer(Duration::from_secs(60), |reply| {
                    WriterMsg::Write(WriteOp::Embed {
                        items: items.clone(),
                        model: "all-MiniLM-L6-v2".into(),
                        reply,
                    })
                })
                .await
                .expect("writer")
                .expect("stored");
        }
        // Wait for the model.
        let t = Instant::now();
        while !engine.embed.is_ready() {
            assert!(t.elapsed() < Duration::from_secs(60), "model did not load");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(engine.index.len(), N, "every vector indexed");

    let recall = |q: String| {
        let m = m.clone();
        let caller = caller.clone();
        async move {
            let r = m
                .recall(
                    &caller,
                    RecallRequest {
                        query: q,
                        limit: Some(10),
                        ..Default::default()
                    },
                )
                .await
                .expect("recall");
            assert_eq!(r.method, "hybrid");
            r.results.len()
        }
    };
    // Percentiles of a new query (model runs) and a repeated one.
    let mut fresh = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        rt.block_on(recall(format!(
            "who reviewed the postgres latency change {i}"
        )));
        fresh.push(t.elapsed());
    }
    let mut cached = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        rt.block_on(recall("who reviewed the postgres latency change".into()));
        cached.push(t.elapsed());
    }
    eprintln!("hybrid recall 100k, new query:    {}", percentiles(fresh));
    eprintln!("hybrid recall 100k, cached query: {}", percentiles(cached));

    let mut g = c.benchmark_group("hybrid_recall_100k");
    g.sample_size(20);
    let mut i = 0u64;
    g.bench_function("new_query", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(recall(format!("which kafka billing deploy failed {i}")))
        })
    });
    g.bench_function("cached_query", |b| {
        b.iter(|| rt.block_on(recall("which kafka billing deploy failed".into())))
    });
    g.finish();
    rt.block_on(engine.shutdown()).expect("shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = scan_vs_vec0, native_embedding, hybrid_recall
}
criterion_main!(benches);
