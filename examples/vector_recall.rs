//! Recall and speed of the vector leg's candidate search against an exact
//! search, on the vectors of a real store (issue 15: recall@10 ≥ 0.95 at
//! 1M).
//!
//! ```sh
//! cargo run --release --example vector_recall -- DB [QUERIES] [NOISE]
//! ```
//!
//! `DB` is a workspace's `memory/memories.db` (e.g. the hybrid store
//! `benches/scale_load.sh` leaves in `target/scale/` with `KEEP=1`). The
//! queries are stored vectors picked with a fixed seed, each moved by
//! Gaussian noise of relative size `NOISE` (default 0.5) and normalised, so
//! a query is near, not equal to, its source. For each it compares:
//! - exact: every stored vector's f32 dot product, best 10;
//! - the vector leg: [`VectorIndex::top`] for 32 candidates (what
//!   `store::search::vector` asks first for a limit of 10), rescored from
//!   the exact vectors, best 10.
//!
//! It prints recall@10, and the time of `top` (two-stage above
//! `PREFILTER_ROWS`) and of a whole int8 scan, p50/p95.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use signet::store::vec::{dot, from_blob, Ranked, VectorIndex, PREFILTER_ROWS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = args
        .get(1)
        .ok_or("usage: vector_recall DB [QUERIES] [NOISE]")?;
    let queries: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let noise: f32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0.5);

    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let t = Instant::now();
    let mut rowids = Vec::new();
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT memory_rowid, vector FROM memory_embeddings")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let blob: Vec<u8> = r.get(1)?;
            if let Some(v) = from_blob(&blob) {
                rowids.push(r.get::<_, i64>(0)?);
                vectors.push(v);
            }
        }
    }
    let dims = vectors
        .first()
        .map(Vec::len)
        .ok_or("no vectors in the store")?;
    let index = VectorIndex::new(dims);
    for (id, v) in rowids.iter().zip(&vectors) {
        index.upsert(*id, v);
    }
    println!(
        "{} vectors × {dims} loaded in {:.1} s; index {} MB; two-stage search: {}",
        vectors.len(),
        t.elapsed().as_secs_f64(),
        index.bytes() / 1_000_000,
        vectors.len() >= PREFILTER_ROWS
    );
    let slot: std::collections::HashMap<i64, usize> =
        rowids.iter().enumerate().map(|(i, r)| (*r, i)).collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let (mut hits, mut top_ms, mut scan_ms) = (0usize, Vec::new(), Vec::new());
    for _ in 0..queries {
        let src = &vectors[rng.gen_range(0..vectors.len())];
        let mut q: Vec<f32> = src
            .iter()
            .map(|x| {
                // Box–Muller: one standard normal per component.
                let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
                let g = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                x + noise * g / (dims as f32).sqrt()
            })
            .collect();
        let n = dot(&q, &q).sqrt();
        q.iter_mut().for_each(|x| *x /= n);

        let mut exact: Vec<(f32, i64)> = vectors
            .iter()
            .zip(&rowids)
            .map(|(v, id)| (dot(&q, v), *id))
            .collect();
        let want: Vec<i64> = Ranked::new(std::mem::take(&mut exact))
            .take(10)
            .iter()
            .map(|c| c.1)
            .collect();

        let t = Instant::now();
        let cands = index.top(&q, 32);
        top_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let mut rescored: Vec<(f32, i64)> = cands
            .iter()
            .map(|(_, id)| (dot(&q, &vectors[slot[id]]), *id))
            .collect();
        rescored.sort_by(|a, b| b.0.total_cmp(&a.0));
        hits += rescored
            .iter()
            .take(10)
            .filter(|c| want.contains(&c.1))
            .count();

        let t = Instant::now();
        let all = index.scores(&q);
        scan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(all);
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    println!(
        "{queries} queries (noise {noise}): recall@10 {:.3}; top(32) p50 {:.1} ms p95 {:.1} ms; \
         whole int8 scan p50 {:.1} ms p95 {:.1} ms",
        hits as f64 / (queries * 10) as f64,
        pct(&mut top_ms, 0.5),
        pct(&mut top_ms, 0.95),
        pct(&mut scan_ms, 0.5),
        pct(&mut scan_ms, 0.95),
    );
    Ok(())
}
