//! Doclists of the keyword leg's operands, kept in memory.
//!
//! A natural question's words come back query after query (a store's
//! vocabulary is small next to the questions asked of it), and reading a
//! word's doclist out of FTS5 is most of an uncached keyword recall. A
//! doclist read once is kept here as sorted rowids and brought up to date
//! cheaply:
//! - an insert only adds rowids above every one seen, so an entry knows the
//!   largest rowid it covers and reads only the rows above it
//!   (`rowid > covered`, a seek in FTS5);
//! - any other change to the keyword index (a content edit, a forget, a
//!   recover, a purge, a repair, an import) bumps the store's rewrite
//!   counter ([`Generation::rewrites`]) after its commit, and every entry
//!   read before it is dropped.
//!
//! The memory rows those reads return (and the neighbour reads after
//! them) are kept the same way: an insert never changes a row, anything
//! that does is a rewrite. Rows are only served for reads without a filter
//! (scope and filters are always checked in SQLite).
//!
//! A reader takes the rewrite counter before it reads, so an entry is
//! never filed under a counter newer than its data. Doclists longer than
//! [`ENTRY_MOST`] stay in FTS5 (the keyword leg seeks through those), and
//! the whole cache holds at most [`TOTAL_MOST`] rowids (8 bytes each), the
//! least recently used dropped first, and [`ROWS_MOST`] rows (all dropped
//! when full).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
// Rowids are the store's own small integers: a fast unkeyed hash.
use rustc_hash::FxHashMap;

use super::search::{Hit, Row};
use super::{Generation, StoreError};

/// The longest doclist kept (rowids).
pub const ENTRY_MOST: usize = 20_000;
/// Rowids kept in all (16 MB).
pub const TOTAL_MOST: usize = 2_000_000;
/// Memory rows kept (a few hundred bytes each).
pub const ROWS_MOST: usize = 20_000;

struct Entry {
    rows: Arc<Vec<i64>>,
    /// Every rowid up to this one is in `rows` if it matches.
    covered: i64,
    used: u64,
}

#[derive(Default)]
struct Inner {
    /// The rewrite counter the entries were read under.
    rewrites: u64,
    entries: HashMap<String, Entry>,
    total: usize,
    tick: u64,
    /// Memory rows as the keyword and neighbour reads return them, by
    /// rowid (an insert never changes a row; anything that does is a
    /// rewrite).
    rows: FxHashMap<i64, Arc<Row>>,
    /// Rows' neighbours in their projects.
    neighbours: FxHashMap<i64, Arc<Neighbours>>,
    /// The keyword index's totals (rows, mean tokens) and the largest
    /// rowid they were read at: only an insert (which moves it) or a
    /// rewrite changes them.
    totals: Option<(i64, (i64, f64))>,
}

/// The live memory stored next to a row in its project.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub rowid: i64,
    pub who: Option<String>,
    pub created_at: String,
}

/// A row's neighbours before and after it, read when the largest rowid
/// was `top`. The one before never changes by an insert (inserts come
/// after every row); the one after does only while there is none, so a
/// missing one is only good while nothing was inserted since.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub sides: [Option<Neighbour>; 2],
    pub top: i64,
}

impl Neighbours {
    /// Still true when the largest rowid is `top`.
    pub fn current(&self, top: i64) -> bool {
        self.sides[1].is_some() || self.top >= top
    }
}

impl Inner {
    /// Follow the counter a reader took: a newer one drops everything;
    /// false when the reader is behind (it reads, but keeps nothing).
    fn follow(&mut self, rewrites: u64) -> bool {
        if self.rewrites < rewrites {
            self.entries.clear();
            self.rows.clear();
            self.neighbours.clear();
            self.totals = None;
            self.total = 0;
            self.rewrites = rewrites;
        }
        self.rewrites == rewrites
    }
}

/// The cache, one per store.
pub struct Postings {
    generation: Arc<Generation>,
    inner: Mutex<Inner>,
    entry_most: usize,
    total_most: usize,
    rows_most: usize,
}

/// What the cache knows of one operand.
pub enum Doclist {
    /// Every matching rowid, ascending.
    Rows(Arc<Vec<i64>>),
    /// Too long to keep: only its length.
    Long(usize),
}

impl Doclist {
    /// Rows the operand matches.
    pub fn len(&self) -> usize {
        match self {
            Doclist::Rows(r) => r.len(),
            Doclist::Long(n) => *n,
        }
    }

    /// True when the operand matches no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Postings {
    /// An empty cache following `generation`'s rewrite counter.
    pub fn new(generation: Arc<Generation>) -> Self {
        Self::with_limits(generation, ENTRY_MOST, TOTAL_MOST)
    }

    /// An empty cache keeping doclists of at most `entry_most` rowids and
    /// `total_most` in all.
    pub fn with_limits(generation: Arc<Generation>, entry_most: usize, total_most: usize) -> Self {
        Postings {
            generation,
            inner: Mutex::new(Inner::default()),
            entry_most,
            total_most,
            rows_most: ROWS_MOST,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The guarded maps stay consistent whatever panicked: every
        // mutation below completes before the guard drops.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The doclist of the FTS5 expression `op` as of now, read through
    /// `conn` where the cache does not have it. `count` gives the number
    /// of rows `op` matches when it has to be read (so a long doclist is
    /// counted, not read out).
    pub fn get(
        &self,
        conn: &Connection,
        op: &str,
        count: impl FnOnce(&Connection, &str) -> Result<usize, StoreError>,
    ) -> Result<Doclist, StoreError> {
        self.get_upto(conn, op, top(conn)?, count)
    }

    /// [`Postings::get`] as of the largest rowid `top`, read by the
    /// caller once for all its operands (an older `top` only means more
    /// rows are read next time).
    pub fn get_upto(
        &self,
        conn: &Connection,
        op: &str,
        top: i64,
        count: impl FnOnce(&Connection, &str) -> Result<usize, StoreError>,
    ) -> Result<Doclist, StoreError> {
        // First the counter, then the reads: data read after a rewrite is
        // never filed under the counter from before it.
        let rewrites = self.generation.rewrites();
        let known = {
            let mut inner = self.lock();
            if inner.follow(rewrites) {
                inner.tick += 1;
                let tick = inner.tick;
                Some(inner.entries.get_mut(op).map(|e| {
                    e.used = tick;
                    (e.rows.clone(), e.covered)
                }))
            } else {
                None
            }
        };
        let keep = known.is_some();
        let (rows, covered) = match known.flatten() {
            Some((rows, covered)) if covered >= top => return Ok(Doclist::Rows(rows)),
            Some((rows, covered)) => {
                let mut more = read(conn, op, covered, top)?;
                if more.is_empty() {
                    (rows, covered)
                } else {
                    let mut all = Vec::with_capacity(rows.len() + more.len());
                    all.extend_from_slice(&rows);
                    all.append(&mut more);
                    (Arc::new(all), covered)
                }
            }
            None => {
                let n = count(conn, op)?;
                if n > self.entry_most {
                    return Ok(Doclist::Long(n));
                }
                (Arc::new(read(conn, op, 0, top)?), 0)
            }
        };
        if keep {
            self.file(op, rows.clone(), covered, top, rewrites);
        }
        Ok(Doclist::Rows(rows))
    }

    /// Keep `rows` (covering up to `top`) unless the cache has moved past
    /// `rewrites` or holds a newer copy; a doclist that grew past
    /// `entry_most` is dropped.
    fn file(&self, op: &str, rows: Arc<Vec<i64>>, was: i64, top: i64, rewrites: u64) {
        let mut inner = self.lock();
        if !inner.follow(rewrites) {
            return;
        }
        if rows.len() > self.entry_most {
            if let Some(e) = inner.entries.remove(op) {
                inner.total -= e.rows.len();
            }
            return;
        }
        inner.tick += 1;
        let tick = inner.tick;
        let len = rows.len();
        let old = match inner.entries.get(op) {
            Some(e) if e.covered > was => return,
            Some(e) => e.rows.len(),
            None => 0,
        };
        inner.entries.insert(
            op.to_string(),
            Entry {
                rows,
                covered: top,
                used: tick,
            },
        );
        inner.total = inner.total - old + len;
        if inner.total > self.total_most {
            // Least recently used first, down to three quarters.
            let mut by_use: Vec<(u64, String, usize)> = inner
                .entries
                .iter()
                .map(|(k, e)| (e.used, k.clone(), e.rows.len()))
                .collect();
            by_use.sort_unstable();
            for (_, k, n) in by_use {
                if inner.total <= self.total_most / 4 * 3 {
                    break;
                }
                inner.entries.remove(&k);
                inner.total -= n;
            }
        }
    }

    /// Of `rowids`, the rows kept (live: a forget is a rewrite), and the
    /// rowids to read; with the counter to file what is read under.
    pub fn rows(&self, rowids: &[i64]) -> (Vec<Hit>, Vec<i64>, u64) {
        let rewrites = self.generation.rewrites();
        let mut inner = self.lock();
        if !inner.follow(rewrites) {
            return (Vec::new(), rowids.to_vec(), rewrites);
        }
        let mut kept = Vec::with_capacity(rowids.len());
        let mut missing = Vec::new();
        for r in rowids {
            match inner.rows.get(r) {
                Some(row) => kept.push(Hit {
                    row: row.clone(),
                    raw: 0.0,
                }),
                None => missing.push(*r),
            }
        }
        (kept, missing, rewrites)
    }

    /// Keep rows read after the counter was `rewrites`.
    pub fn file_rows(&self, hits: &[Hit], rewrites: u64) {
        let mut inner = self.lock();
        if !inner.follow(rewrites) {
            return;
        }
        if inner.rows.len() + hits.len() > self.rows_most {
            inner.rows.clear();
        }
        for h in hits.iter().take(self.rows_most) {
            inner.rows.insert(h.rowid, h.row.clone());
        }
    }

    /// The keyword index's totals as `read` gives them, kept while the
    /// largest rowid stays `top` (read `top` first: totals read after it
    /// may count a row above it, which the next `top` then moves past).
    pub fn totals(
        &self,
        conn: &Connection,
        top: i64,
        read: impl FnOnce(&Connection) -> Result<(i64, f64), StoreError>,
    ) -> Result<(i64, f64), StoreError> {
        let rewrites = self.generation.rewrites();
        {
            let mut inner = self.lock();
            if inner.follow(rewrites) {
                if let Some((at, totals)) = inner.totals {
                    if at == top {
                        return Ok(totals);
                    }
                }
            }
        }
        let totals = read(conn)?;
        let mut inner = self.lock();
        if inner.follow(rewrites) {
            inner.totals = Some((top, totals));
        }
        Ok(totals)
    }

    /// The rewrite counter, taken before a read whose result is filed.
    pub fn rewrites(&self) -> u64 {
        self.generation.rewrites()
    }

    /// The kept neighbours of `rowids` (`None` where not kept), as of
    /// the counter `rewrites`.
    pub fn neighbours(&self, rowids: &[i64], rewrites: u64) -> Vec<Option<Arc<Neighbours>>> {
        let mut inner = self.lock();
        if !inner.follow(rewrites) {
            return vec![None; rowids.len()];
        }
        rowids
            .iter()
            .map(|r| inner.neighbours.get(r).cloned())
            .collect()
    }

    /// Keep neighbours read after the counter was `rewrites`.
    pub fn file_neighbours(&self, read: Vec<(i64, Arc<Neighbours>)>, rewrites: u64) {
        let mut inner = self.lock();
        if !inner.follow(rewrites) {
            return;
        }
        if inner.neighbours.len() + read.len() > self.rows_most {
            inner.neighbours.clear();
        }
        inner
            .neighbours
            .extend(read.into_iter().take(self.rows_most));
    }

    /// Operands kept and the rowids they hold (for tests and status).
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.total)
    }
}

/// The largest rowid of the store (0 when empty).
pub fn top(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(rowid), 0) FROM memories")?
        .query_row([], |r| r.get(0))?)
}

/// The rowids in `(after, upto]` that `op` matches, ascending.
fn read(conn: &Connection, op: &str, after: i64, upto: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1 AND rowid > ?2 AND rowid <= ?3 ORDER BY rowid",
    )?;
    let rows = stmt
        .query_map(rusqlite::params![op, after, upto], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tmp");
        let c = crate::store::open_writer(&dir.path().join("t.db"), 4).expect("open");
        (dir, c)
    }

    fn add(c: &Connection, content: &str) -> i64 {
        crate::store::memories::insert_bare(c, content)
    }

    /// Counts the reads that reach FTS5 for a doclist's length.
    fn counted(
        n: &std::cell::Cell<usize>,
    ) -> impl Fn(&Connection, &str) -> Result<usize, StoreError> + '_ {
        move |c, op| {
            n.set(n.get() + 1);
            let k: i64 = c.query_row(
                "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?1",
                [op],
                |r| r.get(0),
            )?;
            Ok(k as usize)
        }
    }

    fn rows(d: Doclist) -> Vec<i64> {
        match d {
            Doclist::Rows(r) => r.to_vec(),
            Doclist::Long(n) => panic!("a long doclist of {n}"),
        }
    }

    #[test]
    fn index_totals_are_kept_until_an_insert_or_a_rewrite() {
        let (_d, c) = store();
        add(&c, "heron by the river");
        let g = Arc::new(Generation::default());
        let p = Postings::new(g.clone());
        let reads = std::cell::Cell::new(0);
        let totals = |p: &Postings| {
            let top = top(&c).expect("top");
            p.totals(&c, top, |c| {
                reads.set(reads.get() + 1);
                crate::store::search::index_totals(c)
            })
            .expect("totals")
        };
        assert_eq!(totals(&p).0, 1);
        assert_eq!(totals(&p).0, 1);
        assert_eq!(reads.get(), 1, "the second answer came from memory");
        add(&c, "crane at dusk");
        assert_eq!(totals(&p).0, 2, "an insert moves the top");
        assert_eq!(reads.get(), 2);
        // A forget of the newest row leaves the top where it was; the
        // writer's rewrite bump is what drops the totals.
        c.execute(
            "UPDATE memories SET is_deleted = 1 WHERE rowid = (SELECT max(rowid) FROM memories)",
            [],
        )
        .expect("forget");
        g.bump_rewrites();
        assert_eq!(totals(&p).0, 1);
        assert_eq!(reads.get(), 3);
    }

    #[test]
    fn a_doclist_is_read_once_and_follows_inserts() {
        let (_d, c) = store();
        let a = add(&c, "heron by the river");
        add(&c, "crane at dusk");
        let g = Arc::new(Generation::default());
        let p = Postings::new(g.clone());
        let reads = std::cell::Cell::new(0);
        assert_eq!(
            rows(p.get(&c, "heron", counted(&reads)).expect("get")),
            vec![a]
        );
        assert_eq!(
            rows(p.get(&c, "heron", counted(&reads)).expect("get")),
            vec![a]
        );
        assert_eq!(reads.get(), 1, "the second answer came from memory");
        // An insert is picked up from above the covered rowid (no recount).
        let b = add(&c, "a grey heron again");
        add(&c, "no bird here");
        assert_eq!(
            rows(p.get(&c, "heron", counted(&reads)).expect("get")),
            vec![a, b]
        );
        assert_eq!(reads.get(), 1);
        assert_eq!(p.size(), (1, 2));
        // An operand matching nothing is kept too (and stays right).
        assert!(rows(p.get(&c, "galaxy", counted(&reads)).expect("get")).is_empty());
        let g2 = add(&c, "the galaxy");
        assert_eq!(
            rows(p.get(&c, "galaxy", counted(&reads)).expect("get")),
            vec![g2]
        );
    }

    #[test]
    fn a_rewrite_drops_every_doclist_read_before_it() {
        let (_d, c) = store();
        let a = add(&c, "heron by the river");
        let b = add(&c, "heron in the reeds");
        let g = Arc::new(Generation::default());
        let p = Postings::new(g.clone());
        let reads = std::cell::Cell::new(0);
        assert_eq!(
            rows(p.get(&c, "heron", counted(&reads)).expect("get")),
            vec![a, b]
        );
        // A content edit and a forget (the update trigger rewrites the
        // index rows); until the writer bumps the counter the cache still
        // answers from before, as a cached recall would.
        c.execute(
            "UPDATE memories SET content = 'crane by the river' WHERE rowid = ?1",
            [a],
        )
        .expect("edit");
        c.execute("UPDATE memories SET is_deleted = 1 WHERE rowid = ?1", [b])
            .expect("forget");
        g.bump_rewrites();
        assert!(rows(p.get(&c, "heron", counted(&reads)).expect("get")).is_empty());
        assert_eq!(
            rows(p.get(&c, "crane", counted(&reads)).expect("get")),
            vec![a]
        );
        assert_eq!(reads.get(), 3);
    }

    #[test]
    fn long_doclists_stay_in_fts5_and_the_total_is_bounded() {
        let (_d, c) = store();
        for i in 0..6 {
            add(&c, &format!("common word {i} rare{}", i % 3));
        }
        let g = Arc::new(Generation::default());
        let p = Postings::with_limits(g, 4, 4);
        let reads = std::cell::Cell::new(0);
        match p.get(&c, "common", counted(&reads)).expect("get") {
            Doclist::Long(n) => assert_eq!(n, 6),
            Doclist::Rows(r) => panic!("kept {r:?}"),
        }
        assert_eq!(p.size(), (0, 0), "a long doclist is not kept");
        // rare0, rare1, rare2 hold two rows each: the third pushes the
        // total past 4 and the least recently used goes.
        assert_eq!(
            rows(p.get(&c, "rare0", counted(&reads)).expect("get")).len(),
            2
        );
        assert_eq!(
            rows(p.get(&c, "rare1", counted(&reads)).expect("get")).len(),
            2
        );
        assert_eq!(
            rows(p.get(&c, "rare0", counted(&reads)).expect("get")).len(),
            2
        );
        assert_eq!(
            rows(p.get(&c, "rare2", counted(&reads)).expect("get")).len(),
            2
        );
        assert_eq!(p.size(), (1, 2));
        let before = reads.get();
        assert_eq!(
            rows(p.get(&c, "rare2", counted(&reads)).expect("get")).len(),
            2
        );
        assert_eq!(reads.get(), before, "the newest stayed");
        // One kept at the limit and grown past it by inserts is dropped.
        let q = Postings::with_limits(Arc::new(Generation::default()), 2, 100);
        assert_eq!(
            rows(q.get(&c, "rare0", counted(&reads)).expect("get")).len(),
            2
        );
        assert_eq!(q.size(), (1, 2));
        add(&c, "rare0 once more");
        assert_eq!(
            rows(q.get(&c, "rare0", counted(&reads)).expect("get")).len(),
            3
        );
        assert_eq!(q.size(), (0, 0));
    }

    #[test]
    fn rows_are_read_once_until_a_rewrite_and_never_past_a_filter() {
        use crate::store::search::{hits_by_rowid, RecallFilter};
        let (_d, c) = store();
        let a = add(&c, "heron by the river");
        let b = add(&c, "crane at dusk");
        let g = Arc::new(Generation::default());
        let p = Postings::new(g.clone());
        let all = RecallFilter::default();
        let read = |ids: &[i64], f: &RecallFilter| {
            hits_by_rowid(&c, ids, f, Some(&p))
                .expect("rows")
                .into_iter()
                .map(|h| (h.rowid, h.content.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&[b, a], &all).len(), 2);
        assert_eq!(p.rows(&[a, b]).1, Vec::<i64>::new(), "both kept");
        // Changed behind the cache's back: still the kept copy, until the
        // writer's counter moves (it does after every such commit).
        c.execute(
            "UPDATE memories SET content = 'egret by the river' WHERE rowid = ?1",
            [a],
        )
        .expect("edit");
        assert_eq!(
            read(&[a], &all),
            vec![(a, "heron by the river".to_string())]
        );
        g.bump_rewrites();
        assert_eq!(
            read(&[a], &all),
            vec![(a, "egret by the river".to_string())]
        );
        c.execute("UPDATE memories SET is_deleted = 1 WHERE rowid = ?1", [b])
            .expect("forget");
        g.bump_rewrites();
        assert_eq!(read(&[a, b], &all).len(), 1, "a forgotten row is gone");
        // A filter always goes to SQLite.
        let only = RecallFilter {
            project: Some("elsewhere".into()),
            ..RecallFilter::default()
        };
        assert!(read(&[a], &only).is_empty());
    }

    #[test]
    fn neighbours_follow_inserts_after_a_projects_last_row_and_rewrites() {
        use crate::store::search::{adjacent, hits_by_rowid, RecallFilter};
        let (_d, c) = store();
        let turn = |who: &str, text: &str, minute: u32| -> i64 {
            c.execute(
                "INSERT INTO memories(id, content, content_hash, created_at, updated_at, who, project)
                 VALUES (?1, ?1, ?1, ?2, ?2, ?3, 'talk')",
                rusqlite::params![text, format!("2026-01-01T10:{minute:02}:00.000Z"), who],
            )
            .expect("row");
            let rowid = c.last_insert_rowid();
            let row = crate::store::memories::Indexed {
                content: text,
                who: Some(who),
                project: Some("talk"),
                agent: None,
                user: None,
                embedded: false,
                critical: false,
            };
            crate::store::memories::index_new(&c, rowid, &row).expect("index");
            rowid
        };
        let a = turn("ann", "did you go", 0);
        let b = turn("bob", "yes last week", 1);
        let g = Arc::new(Generation::default());
        let p = Postings::new(g.clone());
        let window = chrono::Duration::minutes(30);
        let sides = |rowid: i64| {
            let hits = hits_by_rowid(&c, &[rowid], &RecallFilter::default(), None).expect("hit");
            let refs: Vec<&Hit> = hits.iter().collect();
            adjacent(&c, &refs, window, Some(&p)).expect("adjacent")[0]
        };
        assert_eq!(sides(b), [Some(a), None]);
        assert_eq!(sides(a), [None, Some(b)]);
        // Kept: the same answer without a read, until an insert after the
        // project's last row gives it a next neighbour.
        let c2 = turn("ann", "how was it", 2);
        assert_eq!(sides(b), [Some(a), Some(c2)]);
        // A forget in between is a rewrite: the neighbours are read again.
        c.execute("UPDATE memories SET is_deleted = 1 WHERE rowid = ?1", [b])
            .expect("forget");
        assert_eq!(sides(a), [None, Some(b)], "kept until the counter moves");
        g.bump_rewrites();
        assert_eq!(sides(a), [None, None], "ann's own next turn is no dialogue");
        assert_eq!(sides(c2), [None, None]);
    }

    #[test]
    fn a_reader_behind_a_rewrite_keeps_nothing() {
        let (_d, c) = store();
        add(&c, "heron");
        let g = Arc::new(Generation::default());
        let p = Postings::new(g.clone());
        g.bump_rewrites();
        let reads = std::cell::Cell::new(0);
        p.get(&c, "heron", counted(&reads)).expect("get");
        assert_eq!(p.size(), (1, 1));
        // Filing under an older counter than the cache's is refused.
        p.file("crane", Arc::new(vec![1]), 0, 1, 0);
        assert_eq!(p.size(), (1, 1));
    }
}
