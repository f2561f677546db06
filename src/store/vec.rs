//! Vectors: little-endian f32 blobs in `memory_embeddings`, the same
//! vectors in the sqlite-vec `vec0` table (cosine), and the in-memory index
//! the vector leg of recall scans.
//!
//! Why an in-memory index: a brute-force `vec0` kNN over 100,000 × 384
//! takes ~50–80 ms here, a scan of the same vectors laid out contiguously
//! in memory ~5–10 ms (`benches/README.md`). The index is loaded from the
//! blobs at start and updated by the store writer after each commit, so it
//! never holds a vector SQLite does not. Entries can outlive their memory
//! (hard delete, content change); every candidate is checked against SQLite
//! (live, in scope, passing the filters, vector current) before it counts,
//! so a stale entry costs scan time, never a wrong result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use rusqlite::{params, Connection};

use super::StoreError;

/// The sqlite-vec version the process loaded.
pub fn version(conn: &Connection) -> Result<String, StoreError> {
    Ok(conn.query_row("SELECT vec_version()", [], |r| r.get(0))?)
}

/// Rows in the vector table.
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM memory_vectors", [], |r| r.get(0))?)
}

/// Encode a vector as little-endian f32 bytes.
pub fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decode little-endian f32 bytes; `None` when the length is not a whole
/// number of floats.
pub fn from_blob(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// A vector computed for a memory's content.
#[derive(Debug, Clone)]
pub struct NewVector {
    pub memory_id: String,
    /// The content hash the vector was computed from.
    pub content_hash: String,
    pub vector: Vec<f32>,
}

/// Store vectors (blob + vec0) and mark their memories embedded. A vector
/// whose memory is gone, deleted, or whose content changed since is
/// skipped; one of the wrong dimension is refused. Returns the stored
/// `(rowid, vector)` pairs for the index.
pub fn store(
    conn: &Connection,
    items: &[NewVector],
    model: &str,
    dims: usize,
    now: &str,
) -> Result<Vec<(i64, Vec<f32>)>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        if it.vector.len() != dims {
            return Err(StoreError::Invalid(format!(
                "vector of {} dimensions for a {dims}-dimensional database",
                it.vector.len()
            )));
        }
        let rowid: Option<i64> = conn
            .prepare_cached(
                "SELECT rowid FROM memories WHERE id = ?1 AND is_deleted = 0 AND content_hash = ?2",
            )?
            .query_row(params![it.memory_id, it.content_hash], |r| r.get(0))
            .ok();
        let Some(rowid) = rowid else { continue };
        let blob = to_blob(&it.vector);
        conn.prepare_cached(
            "INSERT INTO memory_embeddings(memory_rowid, model, dims, content_hash, vector, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(memory_rowid) DO UPDATE SET model = excluded.model, dims = excluded.dims,
                content_hash = excluded.content_hash, vector = excluded.vector, created_at = excluded.created_at",
        )?
        .execute(params![rowid, model, dims as i64, it.content_hash, blob, now])?;
        conn.prepare_cached("DELETE FROM memory_vectors WHERE rowid = ?1")?
            .execute([rowid])?;
        conn.prepare_cached("INSERT INTO memory_vectors(rowid, embedding) VALUES (?1, ?2)")?
            .execute(params![rowid, blob])?;
        conn.prepare_cached("UPDATE memories SET embedding_model = ?2 WHERE rowid = ?1")?
            .execute(params![rowid, model])?;
        out.push((rowid, it.vector.clone()));
    }
    Ok(out)
}

/// The `k` nearest stored vectors to `q` by an exact `vec0` search, as
/// `(cosine similarity, rowid)`, best first (`k` at most 4096, sqlite-vec's
/// bound). Slow on a large store; the vector leg uses it only while the
/// in-memory index is still loading.
pub fn knn(conn: &Connection, q: &[f32], k: usize) -> Result<Vec<(f32, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, distance FROM memory_vectors WHERE embedding MATCH ?1 AND k = ?2
         ORDER BY distance",
    )?;
    let rows = stmt.query_map(params![to_blob(q), k.clamp(1, KNN_MAX) as i64], |r| {
        Ok((1.0 - r.get::<_, f64>(1)? as f32, r.get::<_, i64>(0)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// sqlite-vec's largest `k`.
pub const KNN_MAX: usize = 4_096;

/// Drop a memory's vector (its content changed or it is gone).
pub fn remove(conn: &Connection, rowid: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM memory_embeddings WHERE memory_rowid = ?1")?
        .execute([rowid])?;
    conn.prepare_cached("DELETE FROM memory_vectors WHERE rowid = ?1")?
        .execute([rowid])?;
    Ok(())
}

/// Live memories without a vector after rowid `cursor`, in rowid order:
/// (rowid, id, content, content hash).
pub fn gaps_after(
    conn: &Connection,
    cursor: i64,
    limit: usize,
) -> Result<Vec<(i64, String, String, String)>, StoreError> {
    // The live counts know whether any live memory lacks a vector; when
    // none does, no scan (at a million memories a scan that finds nothing
    // reads the whole table, and the backfill asks every few seconds).
    let pending: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(live) - SUM(embedded), 0) FROM memory_counts")?
        .query_row([], |r| r.get(0))?;
    if pending <= 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, id, content, content_hash FROM memories
         WHERE rowid > ?1 AND is_deleted = 0 AND embedding_model IS NULL
         ORDER BY rowid LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![cursor, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

struct Slots {
    rowids: Vec<i64>,
    /// `rowids.len() × dims` int8 codes, row-major.
    codes: Vec<i8>,
    /// Per vector: the value of one code step.
    scales: Vec<f32>,
    /// `rowids.len() × words` sign bits (bit set: component > 0), the
    /// first stage of a search in a large index.
    bits: Vec<u64>,
    slot: HashMap<i64, usize>,
}

impl Slots {
    /// Append a vector that has no slot yet.
    fn push(&mut self, rowid: i64, codes: &[i8], scale: f32) {
        let i = self.rowids.len();
        self.rowids.push(rowid);
        self.codes.extend_from_slice(codes);
        self.scales.push(scale);
        self.bits.extend(sign_bits(codes));
        self.slot.insert(rowid, i);
    }
}

/// Sign bits of a vector's int8 codes, `dims.div_ceil(64)` words.
fn sign_bits(codes: &[i8]) -> Vec<u64> {
    codes
        .chunks(64)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0_u64, |w, (i, x)| if *x > 0 { w | 1 << i } else { w })
        })
        .collect()
}

/// Rows from which `top` ranks by sign bits first (below this, one int8
/// scan is fast enough: ~3 ms at 100k).
pub const PREFILTER_ROWS: usize = 200_000;
/// Rows kept by the sign-bit stage per row asked for, and at least.
const PREFILTER_FACTOR: usize = 64;
const PREFILTER_MIN: usize = 4_096;

/// Scalar-quantise a vector to int8: `v ≈ code · scale`.
pub fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0_f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    let codes = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (codes, scale)
}

/// Vectors by memory rowid, int8-quantised and contiguous for a fast scan.
///
/// A scan is bound by memory bandwidth: 100k × 384 f32 is 154 MB read per
/// query, the int8 codes 38 MB (and that much less resident). Codes only
/// rank candidates; the vector leg scores the candidates it keeps exactly,
/// from the f32 blobs in SQLite.
pub struct VectorIndex {
    dims: usize,
    inner: RwLock<Slots>,
    /// False while the daemon loads the stored vectors in the background
    /// (the vector leg then asks `vec0` instead, see `search::vector`).
    complete: AtomicBool,
}

impl VectorIndex {
    /// An empty index of `dims`-dimensional vectors.
    pub fn new(dims: usize) -> Self {
        VectorIndex {
            dims,
            inner: RwLock::new(Slots {
                rowids: Vec::new(),
                codes: Vec::new(),
                scales: Vec::new(),
                bits: Vec::new(),
                slot: HashMap::new(),
            }),
            complete: AtomicBool::new(true),
        }
    }

    /// Whether the index holds every stored vector (false from
    /// [`VectorIndex::begin_loading`] until [`VectorIndex::fill`] ends).
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Mark the index incomplete until a `fill` finishes.
    pub fn begin_loading(&self) {
        self.complete.store(false, Ordering::Release);
    }

    /// Load every current vector of live memories (at start, while the
    /// daemon already serves), in chunks: each is quantised outside the
    /// lock and added under one write lock, and a vector the store writer
    /// added meanwhile (newer) is kept. Marks the index complete.
    pub fn fill(&self, conn: &Connection) -> Result<usize, StoreError> {
        const CHUNK: usize = 8_192;
        let mut n = 0;
        let mut stmt = conn.prepare(
            "SELECT e.memory_rowid, e.vector FROM memory_embeddings e
             JOIN memories m ON m.rowid = e.memory_rowid
             WHERE m.is_deleted = 0 AND m.content_hash = e.content_hash AND e.dims = ?1",
        )?;
        // Room for every vector at once (the live counts say how many),
        // so a million do not grow the arrays step by step.
        let expected: i64 = conn.query_row(
            "SELECT COALESCE(SUM(embedded), 0) FROM memory_counts",
            [],
            |r| r.get(0),
        )?;
        // (Bounded: a damaged counts table must not ask for terabytes.)
        let expected = expected.clamp(0, 1 << 26);
        if let (Ok(more), Ok(mut s)) = (usize::try_from(expected), self.inner.write()) {
            let w = self.dims.div_ceil(64);
            s.rowids.reserve(more);
            s.scales.reserve(more);
            s.codes.reserve(more.saturating_mul(self.dims));
            s.bits.reserve(more.saturating_mul(w));
            s.slot.reserve(more);
        }
        let mut rows = stmt.query([self.dims as i64])?;
        let mut chunk: Vec<(i64, Vec<i8>, f32)> = Vec::with_capacity(CHUNK);
        loop {
            let row = rows.next()?;
            if let Some(r) = row {
                let blob: Vec<u8> = r.get(1)?;
                if let Some(v) = from_blob(&blob).filter(|v| v.len() == self.dims) {
                    let (codes, scale) = quantise(&v);
                    chunk.push((r.get(0)?, codes, scale));
                }
            }
            if chunk.len() == CHUNK || (row.is_none() && !chunk.is_empty()) {
                n += chunk.len();
                let Ok(mut s) = self.inner.write() else {
                    return Err(StoreError::Task("vector index lock poisoned".into()));
                };
                for (rowid, codes, scale) in chunk.drain(..) {
                    if !s.slot.contains_key(&rowid) {
                        s.push(rowid, &codes, scale);
                    }
                }
            }
            if row.is_none() {
                break;
            }
        }
        self.complete.store(true, Ordering::Release);
        Ok(n)
    }

    /// Vector dimension.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.inner.read().map(|s| s.rowids.len()).unwrap_or(0)
    }

    /// True when no vector is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the codes and scales.
    pub fn bytes(&self) -> usize {
        self.inner
            .read()
            .map(|s| {
                s.codes.capacity()
                    + s.scales.capacity() * 4
                    + s.rowids.capacity() * 8
                    + s.bits.capacity() * 8
            })
            .unwrap_or(0)
    }

    /// Insert or replace a memory's vector (ignored if the dimension is
    /// wrong).
    pub fn upsert(&self, rowid: i64, v: &[f32]) {
        if v.len() != self.dims {
            return;
        }
        let (codes, scale) = quantise(v);
        let bits = sign_bits(&codes);
        let w = bits.len();
        let Ok(mut s) = self.inner.write() else {
            return;
        };
        match s.slot.get(&rowid).copied() {
            Some(i) => {
                s.codes[i * self.dims..(i + 1) * self.dims].copy_from_slice(&codes);
                s.scales[i] = scale;
                s.bits[i * w..(i + 1) * w].copy_from_slice(&bits);
            }
            None => s.push(rowid, &codes, scale),
        }
    }

    /// Remove a memory's vector.
    pub fn remove(&self, rowid: i64) {
        let Ok(mut s) = self.inner.write() else {
            return;
        };
        let Some(i) = s.slot.remove(&rowid) else {
            return;
        };
        let last = s.rowids.len() - 1;
        let d = self.dims;
        let w = self.dims.div_ceil(64);
        if i != last {
            let moved = s.rowids[last];
            s.rowids[i] = moved;
            s.scales[i] = s.scales[last];
            s.codes.copy_within(last * d..(last + 1) * d, i * d);
            s.bits.copy_within(last * w..(last + 1) * w, i * w);
            s.slot.insert(moved, i);
        }
        s.rowids.pop();
        s.scales.pop();
        s.codes.truncate(last * d);
        s.bits.truncate(last * w);
    }

    /// Whether a memory's vector is held.
    pub fn contains(&self, rowid: i64) -> bool {
        self.inner
            .read()
            .map(|s| s.slot.contains_key(&rowid))
            .unwrap_or(false)
    }

    /// Approximate cosine similarity of `q` (a unit vector) with every held
    /// vector, as `(score, rowid)`, unordered.
    pub fn scores(&self, q: &[f32]) -> Vec<(f32, i64)> {
        if q.len() != self.dims {
            return Vec::new();
        }
        let (qc, qs) = quantise(q);
        let Ok(s) = self.inner.read() else {
            return Vec::new();
        };
        let mut raw = vec![0_i32; s.rowids.len()];
        scan(&s.codes, self.dims, &qc, &mut raw);
        raw.iter()
            .zip(&s.scales)
            .zip(&s.rowids)
            .map(|((r, vs), id)| (*r as f32 * qs * vs, *id))
            .collect()
    }
}

impl VectorIndex {
    /// Whether `top(q, n)` ranks by sign bits first (a large index and an
    /// `n` small beside it); otherwise it scans every int8 code.
    pub fn prefilters(&self, n: usize) -> bool {
        let len = self.len();
        len >= PREFILTER_ROWS && prefilter_pool(n) < len / 4
    }

    /// The `n` best approximate scores, best first, without materialising
    /// every score. A small index is scanned whole (int8 dot products). A
    /// large one is searched in two stages: the Hamming distance of sign
    /// bits (48 bytes a vector at 384 dims, an eighth of the codes) keeps
    /// the `max(64·n, 4096)` nearest, and only those are scored from their
    /// codes. Recall of the stages against an exact search is measured by
    /// `examples/vector_recall.rs` (`benches/README.md`).
    pub fn top(&self, q: &[f32], n: usize) -> Vec<(f32, i64)> {
        if q.len() != self.dims || n == 0 {
            return Vec::new();
        }
        let (qc, qs) = quantise(q);
        let Ok(s) = self.inner.read() else {
            return Vec::new();
        };
        let len = s.rowids.len();
        let scored: Vec<(f32, usize)> = if len >= PREFILTER_ROWS && prefilter_pool(n) < len / 4 {
            let qb = sign_bits(&qc);
            let near = nearest_by_bits(&s.bits, &qb, prefilter_pool(n));
            let mut raw = vec![0_i32; near.len()];
            dot_rows(&s.codes, self.dims, &near, &qc, &mut raw);
            near.into_iter()
                .zip(raw)
                .map(|(i, r)| (r as f32 * qs * s.scales[i], i))
                .collect()
        } else {
            let mut raw = vec![0_i32; len];
            scan(&s.codes, self.dims, &qc, &mut raw);
            raw.iter()
                .zip(&s.scales)
                .enumerate()
                .map(|(i, (r, vs))| (*r as f32 * qs * vs, i))
                .collect()
        };
        let mut out: Vec<(f32, i64)> = best(scored, n)
            .into_iter()
            .map(|(sc, i)| (sc, s.rowids[i]))
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        out
    }
}

/// Rows the sign-bit stage keeps for `n` results.
fn prefilter_pool(n: usize) -> usize {
    n.saturating_mul(PREFILTER_FACTOR).max(PREFILTER_MIN)
}

/// The best `n` of `scored`, unordered: a bounded min-heap, so most rows
/// lose one comparison.
fn best(scored: Vec<(f32, usize)>, n: usize) -> Vec<(f32, usize)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<Reverse<(OrdF32, usize)>> = BinaryHeap::with_capacity(n + 1);
    for (score, i) in scored {
        let score = OrdF32(score);
        if heap.len() < n {
            heap.push(Reverse((score, i)));
        } else if heap.peek().is_some_and(|Reverse((min, _))| score > *min) {
            heap.pop();
            heap.push(Reverse((score, i)));
        }
    }
    heap.into_iter().map(|Reverse((sc, i))| (sc.0, i)).collect()
}

/// Slots of the `k` rows whose sign bits are nearest `q` (Hamming), ties
/// at the cut broken by slot. Distances are counted into a histogram, so
/// finding the cut costs one pass, not a sort.
fn nearest_by_bits(bits: &[u64], q: &[u64], k: usize) -> Vec<usize> {
    let w = q.len();
    let rows = bits.len() / w.max(1);
    let mut dist = vec![0_u16; rows];
    hamming(bits, q, &mut dist);
    if k >= rows {
        return (0..rows).collect();
    }
    let mut hist = vec![0_usize; w * 64 + 1];
    for d in &dist {
        hist[usize::from(*d)] += 1;
    }
    let (mut cut, mut below) = (hist.len(), 0);
    for (d, c) in hist.iter().enumerate() {
        if below + c >= k {
            cut = d;
            break;
        }
        below += c;
    }
    let mut at_cut = k.saturating_sub(below);
    let mut out = Vec::with_capacity(k);
    for (i, d) in dist.iter().enumerate() {
        let d = usize::from(*d);
        if d < cut {
            out.push(i);
        } else if d == cut && at_cut > 0 {
            out.push(i);
            at_cut -= 1;
        }
    }
    out
}

/// Hamming distance of `q` to each `q.len()`-word row of `bits`, in two
/// halves at once like [`scan`].
fn hamming(bits: &[u64], q: &[u64], out: &mut [u16]) {
    let w = q.len();
    let body = |b: &[u64], o: &mut [u16]| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("popcnt") {
                // SAFETY: the CPU has POPCNT (checked just above).
                unsafe { hamming_popcnt(b, q, o) };
                return;
            }
        }
        hamming_body(b, q, o);
    };
    if out.len() >= PARALLEL_ROWS {
        let half = out.len() / 2;
        let (b1, b2) = bits.split_at(half * w);
        let (o1, o2) = out.split_at_mut(half);
        std::thread::scope(|s| {
            s.spawn(|| body(b2, o2));
            body(b1, o1);
        });
    } else {
        body(bits, out);
    }
}

/// The Hamming loop compiled with the POPCNT instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn hamming_popcnt(bits: &[u64], q: &[u64], out: &mut [u16]) {
    hamming_body(bits, q, out)
}

#[inline(always)]
fn hamming_body(bits: &[u64], q: &[u64], out: &mut [u16]) {
    // 384 dimensions (the default model) are six words: a fixed-length
    // row the compiler unrolls.
    if let Ok(q6) = <&[u64; 6]>::try_from(q) {
        for (row, d) in bits.chunks_exact(6).zip(out.iter_mut()) {
            let mut n = 0;
            for i in 0..6 {
                n += (row[i] ^ q6[i]).count_ones();
            }
            *d = n as u16;
        }
        return;
    }
    for (row, d) in bits.chunks_exact(q.len()).zip(out.iter_mut()) {
        *d = row
            .iter()
            .zip(q)
            .map(|(a, b)| (a ^ b).count_ones() as u16)
            .sum();
    }
}

/// Integer dot products of `q` with the code rows at `rows` (AVX2 when
/// the CPU has it, like [`scan`]).
fn dot_rows(codes: &[i8], dims: usize, rows: &[usize], q: &[i8], out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { dot_rows_avx2(codes, dims, rows, q, out) };
            return;
        }
    }
    dot_rows_body(codes, dims, rows, q, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_rows_avx2(codes: &[i8], dims: usize, rows: &[usize], q: &[i8], out: &mut [i32]) {
    dot_rows_body(codes, dims, rows, q, out)
}

#[inline(always)]
fn dot_rows_body(codes: &[i8], dims: usize, rows: &[usize], q: &[i8], out: &mut [i32]) {
    for (&i, o) in rows.iter().zip(out.iter_mut()) {
        *o = codes[i * dims..(i + 1) * dims]
            .iter()
            .zip(q)
            .map(|(a, b)| i32::from(*a) * i32::from(*b))
            .sum();
    }
}

/// An f32 with a total order (for the heap).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);

impl Eq for OrdF32 {}

impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Rows above which a scan is split across two threads.
const PARALLEL_ROWS: usize = 32_768;

/// Integer dot products of `q` with each `dims`-long row of `codes`; a
/// large index is scanned in two halves at once (a lone recall then takes
/// half the time; under load the halves just share the cores).
fn scan(codes: &[i8], dims: usize, q: &[i8], out: &mut [i32]) {
    if out.len() >= PARALLEL_ROWS {
        let half = out.len() / 2;
        let (c1, c2) = codes.split_at(half * dims);
        let (o1, o2) = out.split_at_mut(half);
        std::thread::scope(|s| {
            s.spawn(|| scan_rows(c2, dims, q, o2));
            scan_rows(c1, dims, q, o1);
        });
    } else {
        scan_rows(codes, dims, q, out);
    }
}

fn scan_rows(codes: &[i8], dims: usize, q: &[i8], out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { scan_avx2(codes, dims, q, out) };
            return;
        }
    }
    scan_body(codes, dims, q, out);
}

/// The scan compiled for AVX2 (the same code; the compiler widens it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2(codes: &[i8], dims: usize, q: &[i8], out: &mut [i32]) {
    scan_body(codes, dims, q, out)
}

#[inline(always)]
fn scan_body(codes: &[i8], dims: usize, q: &[i8], out: &mut [i32]) {
    for (row, o) in codes.chunks_exact(dims).zip(out.iter_mut()) {
        *o = row
            .iter()
            .zip(q)
            .map(|(a, b)| i32::from(*a) * i32::from(*b))
            .sum();
    }
}

/// Dot product in eight independent lanes (the compiler vectorises it).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0_f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Walks scores best first, a growing batch at a time, so the vector leg
/// can stop as soon as enough candidates passed the SQL check.
pub struct Ranked {
    scores: Vec<(f32, i64)>,
    next: usize,
}

impl Ranked {
    /// Rank `scores` lazily.
    pub fn new(scores: Vec<(f32, i64)>) -> Self {
        Ranked { scores, next: 0 }
    }

    /// Every score has been taken.
    pub fn is_exhausted(&self) -> bool {
        self.next >= self.scores.len()
    }

    /// The next best `n` (fewer at the end), best first.
    pub fn take(&mut self, n: usize) -> &[(f32, i64)] {
        let start = self.next;
        let rest = &mut self.scores[start..];
        let n = n.min(rest.len());
        if n == 0 {
            return &[];
        }
        let by_score = |a: &(f32, i64), b: &(f32, i64)| b.0.total_cmp(&a.0);
        if n < rest.len() {
            rest.select_nth_unstable_by(n - 1, by_score);
        }
        rest[..n].sort_unstable_by(by_score);
        self.next = start + n;
        &self.scores[start..start + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_little_endian() {
        let v = vec![1.0_f32, -0.5, 3.25];
        let b = to_blob(&v);
        assert_eq!(&b[..4], &1.0_f32.to_le_bytes());
        assert_eq!(from_blob(&b), Some(v));
        assert_eq!(from_blob(&[0, 1, 2]), None);
    }

    #[test]
    fn index_upsert_remove_keeps_slots_consistent() {
        let ix = VectorIndex::new(2);
        ix.upsert(1, &[1.0, 0.0]);
        ix.upsert(2, &[0.0, 1.0]);
        ix.upsert(3, &[0.6, 0.8]);
        ix.upsert(1, &[0.8, 0.6]);
        ix.upsert(9, &[1.0]); // wrong dimension: ignored
        assert_eq!(ix.len(), 3);
        ix.remove(1);
        ix.remove(42);
        assert_eq!(ix.len(), 2);
        assert!(ix.contains(3) && ix.contains(2));
        assert!(!ix.contains(1));
        let mut s = ix.scores(&[0.0, 1.0]);
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(s.iter().map(|x| x.1).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn quantised_scores_track_exact_cosine() {
        let unit = |seed: u32| -> Vec<f32> {
            let v: Vec<f32> = (0..384)
                .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) as f32).sin())
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        };
        let ix = VectorIndex::new(384);
        let vs: Vec<Vec<f32>> = (0..50).map(|i| unit(i * 7919)).collect();
        for (i, v) in vs.iter().enumerate() {
            ix.upsert(i as i64, v);
        }
        let q = unit(12345);
        for (approx, id) in ix.scores(&q) {
            let exact = dot(&q, &vs[id as usize]);
            assert!((approx - exact).abs() < 0.02, "{approx} vs {exact}");
        }
        let (codes, scale) = quantise(&[0.0, 0.5, -1.0]);
        assert_eq!(codes, vec![0, 64, -127]);
        assert!((scale - 1.0 / 127.0).abs() < 1e-9);
        assert_eq!(quantise(&[0.0, 0.0]).1, 0.0);
    }

    #[test]
    fn dot_matches_the_naive_sum_for_any_length() {
        for n in [1, 7, 8, 9, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn top_matches_the_full_ranking() {
        let ix = VectorIndex::new(2);
        for i in 0..100_i64 {
            let a = i as f32 * 0.031;
            ix.upsert(i, &[a.cos(), a.sin()]);
        }
        let q = [1.0_f32, 0.0];
        let top = ix.top(&q, 5);
        let mut full = Ranked::new(ix.scores(&q));
        let want: Vec<i64> = full.take(5).iter().map(|x| x.1).collect();
        assert_eq!(top.iter().map(|x| x.1).collect::<Vec<_>>(), want);
        assert_eq!(ix.top(&q, 500).len(), 100);
        assert!(ix.top(&q, 0).is_empty());
    }

    #[test]
    fn sign_bits_and_the_nearest_rows_by_hamming_distance() {
        assert_eq!(sign_bits(&[1, -1, 0, 5]), vec![0b1001]);
        let long: Vec<i8> = (0..70).map(|i| if i == 65 { 1 } else { -1 }).collect();
        assert_eq!(sign_bits(&long), vec![0, 0b10]);
        // Rows at distance 3, 0, 2, 0, 1 from the query.
        let q = [0b1111_u64];
        let bits = [0b1000, 0b1111, 0b1100, 0b1111, 0b1110];
        assert_eq!(nearest_by_bits(&bits, &q, 2), vec![1, 3]);
        assert_eq!(nearest_by_bits(&bits, &q, 3), vec![1, 3, 4]);
        // A tie at the cut keeps the first rows only.
        let tied = [0b1110, 0b1101, 0b1011];
        assert_eq!(nearest_by_bits(&tied, &q, 2), vec![0, 1]);
        assert_eq!(nearest_by_bits(&bits, &q, 10).len(), 5);
    }

    #[test]
    fn a_large_index_searched_in_two_stages_finds_the_best_rows() {
        // Clustered like text embeddings (500 centres, each vector a centre
        // plus noise): the sign-bit stage must keep every true neighbour.
        let dims = 64;
        let ix = VectorIndex::new(dims);
        let mut seed = 1_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let unit = |v: Vec<f32>| {
            let n = dot(&v, &v).sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let centres: Vec<Vec<f32>> = (0..500)
            .map(|_| unit((0..dims).map(|_| next()).collect()))
            .collect();
        let mut near = |c: &[f32], noise: f32| unit(c.iter().map(|x| x + noise * next()).collect());
        for i in 0..PREFILTER_ROWS {
            ix.upsert(i as i64, &near(&centres[i % centres.len()], 0.3));
        }
        assert!(ix.prefilters(32));
        assert!(!ix.prefilters(PREFILTER_ROWS));
        let mut found = 0;
        for c in 0..10 {
            let q = near(&centres[c * 37], 0.3);
            let want: Vec<i64> = Ranked::new(ix.scores(&q))
                .take(10)
                .iter()
                .map(|x| x.1)
                .collect();
            let got = ix.top(&q, 10);
            assert_eq!(got.len(), 10);
            assert!(got.windows(2).all(|w| w[0].0 >= w[1].0));
            found += got.iter().filter(|x| want.contains(&x.1)).count();
        }
        assert!(found >= 95, "two-stage recall@10 {found}/100");
    }

    #[test]
    fn ranked_yields_every_score_once_best_first() {
        let scores: Vec<(f32, i64)> = (0..100).map(|i| (((i * 37) % 100) as f32, i)).collect();
        let mut r = Ranked::new(scores);
        let mut seen = Vec::new();
        for n in [1, 4, 16, 64, 64] {
            seen.extend(r.take(n).iter().map(|x| x.0));
        }
        assert_eq!(seen.len(), 100);
        assert!(seen.windows(2).all(|w| w[0] >= w[1]));
        assert!(r.take(5).is_empty());
    }
}
