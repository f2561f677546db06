//! The store writer: the only read-write SQLite connection.
//!
//! Every mutation in the process arrives here as a [`WriteOp`]. The actor
//! hands each write to the writer's own thread (its [`Lane`]), which owns
//! the connection and commits batch after batch: each batch is every write
//! queued while the previous one ran, in one transaction (group commit).
//! The thread never waits for the actor to be scheduled between batches,
//! and never idles while writes are queued. Callers get their reply only
//! once the commit is on disk (`synchronous: full`: the [`Syncer`] syncs
//! the WAL beside the writer), so a reply means the write is durable. Ops
//! run without savepoints; when one fails, the batch is re-run with a
//! savepoint per op, so one failing op never rolls back its neighbours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rusqlite::Connection;

use super::sse::Draft;
use super::Registry;
use crate::store::access::AccessTracker;
use crate::store::checkpoint::{CheckpointStats, Checkpointer};
use crate::store::jobs::{self, Job};
use crate::store::maintenance::{self, RepairAction, RepairOutcome, SweepStep};
use crate::store::memories::{
    self, Audit, ForgetRequest, MemoryRecord, ModifyRequest, MutationOutcome, MutationStatus,
    NewMemory, RecoverRequest, RememberOutcome,
};
use crate::store::sessions::{self, NewCheckpoint, NewSummary, NewSummaryJob, SummaryJob};
use crate::store::transfer;
use crate::store::vec::{self as vectors, NewVector, VectorIndex};
use crate::store::Generation;
use crate::store::{self, search, Fault, StoreError};
use chrono::{DateTime, Utc};

/// Reply port of a write.
pub type Reply<T> = RpcReplyPort<Result<T, StoreError>>;

/// One write, with the port its caller waits on.
pub enum WriteOp {
    /// Insert a memory unless a live duplicate exists.
    Remember {
        new: Box<NewMemory>,
        audit: Audit,
        reply: Reply<RememberOutcome>,
    },
    /// Patch memories (one or a batch), each checked on its own.
    Modify {
        reqs: Vec<ModifyRequest>,
        audit: Audit,
        reply: Reply<Vec<MutationOutcome>>,
    },
    /// Soft-delete memories (one or a batch), each checked on its own.
    Forget {
        reqs: Vec<ForgetRequest>,
        audit: Audit,
        reply: Reply<Vec<MutationOutcome>>,
    },
    /// Undo a soft delete.
    Recover {
        req: RecoverRequest,
        audit: Audit,
        reply: Reply<MutationOutcome>,
    },
    /// Add batched access counts; nobody waits for it.
    Access { hits: Vec<(String, i64)> },
    /// Remove one batch of one retention step.
    Sweep {
        step: SweepStep,
        cutoff: String,
        batch: i64,
        reply: Reply<usize>,
    },
    /// Free up to `pages` pages of the file (incremental auto-vacuum);
    /// replies with the pages freed and the free pages left.
    Vacuum {
        pages: i64,
        reply: Reply<(i64, i64)>,
    },
    /// Run a repair action (and write its audit row).
    Repair {
        action: RepairAction,
        audit: Audit,
        reply: Reply<RepairOutcome>,
    },
    /// Store vectors computed by the pipeline (stale ones are skipped).
    Embed {
        items: Vec<NewVector>,
        model: String,
        reply: Reply<usize>,
    },
    /// One step of the pipeline's job queue.
    Job { op: JobOp, reply: Reply<JobReply> },
    /// Fold agents' ratings into the per-session running means.
    Feedback {
        session_key: String,
        ratings: Vec<(String, f64)>,
        reply: Reply<()>,
    },
    /// A session's checkpoint or summary-queue step.
    Session {
        op: SessionWrite,
        reply: Reply<Option<SummaryJob>>,
    },
    /// Insert a batch of exported (or migrated) memories, keeping their
    /// ids, versions and history (see [`crate::store::transfer`]).
    Import {
        batch: Vec<transfer::Ready>,
        target: transfer::VectorTarget,
        reply: Reply<Vec<transfer::Outcome>>,
    },
    /// Persist a token revocation (`kind` is `jti` or `sub`).
    Revoke {
        kind: &'static str,
        value: String,
        at: i64,
        by: String,
        reply: Reply<()>,
    },
}

impl WriteOp {
    /// Rows the op adds to or rewrites in the keyword index, roughly (a
    /// duplicate adds none, a sweep may purge many).
    fn rows(&self) -> u64 {
        match self {
            WriteOp::Import { batch, .. } => batch.len() as u64,
            WriteOp::Modify { reqs, .. } => reqs.len() as u64,
            WriteOp::Forget { reqs, .. } => reqs.len() as u64,
            WriteOp::Remember { .. }
            | WriteOp::Recover { .. }
            | WriteOp::Sweep { .. }
            | WriteOp::Repair { .. } => 1,
            WriteOp::Access { .. }
            | WriteOp::Vacuum { .. }
            | WriteOp::Embed { .. }
            | WriteOp::Job { .. }
            | WriteOp::Feedback { .. }
            | WriteOp::Session { .. }
            | WriteOp::Revoke { .. } => 0,
        }
    }

    /// Roughly what the op writes, for the batch's byte bound: the text
    /// and vectors it carries (other columns are small and bounded).
    fn approx_bytes(&self) -> usize {
        const ROW: usize = 256;
        match self {
            WriteOp::Remember { new, .. } => ROW + 2 * new.content.len(),
            WriteOp::Modify { reqs, .. } => reqs.len() * ROW * 4,
            WriteOp::Embed { items, .. } => items.iter().map(|v| ROW + 8 * v.vector.len()).sum(),
            WriteOp::Import { batch, .. } => batch
                .iter()
                .map(|r| {
                    ROW + 2 * r.line.content.len() + r.vector.as_ref().map_or(0, |v| 8 * v.len())
                })
                .sum(),
            _ => ROW,
        }
    }
}

/// A write of the session records (see [`crate::store::sessions`]).
#[derive(Debug, Clone)]
pub enum SessionWrite {
    Checkpoint(Box<NewCheckpoint>),
    QueueSummary(Box<NewSummaryJob>),
    /// Lease the oldest pending summary job (or one leased before `stale`).
    LeaseSummary {
        stale: String,
    },
    CompleteSummary(Box<NewSummary>),
    FailSummary {
        id: String,
        error: String,
        max_attempts: i64,
    },
}

/// A step of the job queue (see [`crate::store::jobs`]); `now` comes from
/// the pipeline's clock.
#[derive(Debug, Clone)]
pub enum JobOp {
    Lease {
        kinds: Vec<&'static str>,
        now: DateTime<Utc>,
    },
    /// Done; an `extract` job also sets the memory's extraction status.
    Complete {
        id: String,
        extraction_status: Option<&'static str>,
        now: DateTime<Utc>,
    },
    Fail {
        id: String,
        error: String,
        now: DateTime<Utc>,
    },
    Reap {
        timeout_secs: i64,
        now: DateTime<Utc>,
    },
    /// Every lease back to pending, attempts unchanged (a clean stop).
    Release { now: DateTime<Utc> },
    /// Shadow mode: record what the pipeline would have done, as a
    /// `proposed` history row of the source memory, and nothing else.
    Propose {
        memory_id: String,
        proposal: serde_json::Value,
        audit: Audit,
    },
}

/// What a job step produced.
#[derive(Debug, Clone)]
pub enum JobReply {
    Leased(Option<Job>),
    /// Whether the job was still leased (and is now completed).
    Completed(bool),
    /// The job after the failure (pending with a backoff, or dead).
    Failed(Option<Job>),
    Reaped(Vec<Job>),
    Released(usize),
    Proposed,
}

/// Which jobs the writer queues by itself as part of a write.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobPolicy {
    /// Queue an `embed` job when a memory's content changes.
    pub embed_on_change: bool,
    /// Queue an `extract` job for every new memory and content change
    /// (not for the pipeline's own writes).
    pub extract_on_write: bool,
    pub max_attempts: i64,
}

/// Messages to the store writer.
// Writes dominate the mailbox and are moved once into the buffer; boxing
// them to shrink the rare control messages would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum WriterMsg {
    /// Hand a write to the writer's thread; it commits with the next batch.
    Write(WriteOp),
    /// Move batched recall access counts into the buffer (timer).
    FlushAccess,
    /// Checkpoint the WAL into the database file.
    Checkpoint(RpcReplyPort<Result<(), StoreError>>),
    /// The writer's thread panicked inside a batch (self-sent): the actor
    /// fails and the supervisor restarts it.
    LaneFailed,
    /// Fault injection (supervision tests, chaos drills): the writer's
    /// thread panics at its next step, as a batch would, and the
    /// supervisor must restart the writer.
    InjectPanic,
}

/// Counters of the group commit, shared with `/api/status` and benches.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub ops: AtomicU64,
    pub max_batch: AtomicU64,
    pub commit_failures: AtomicU64,
    /// Nanoseconds spent executing and committing batches.
    pub busy_ns: AtomicU64,
    /// Of which in COMMIT (WAL write; the sync is the sync thread's).
    pub commit_ns: AtomicU64,
    /// WAL syncs run beside the writer (each covers every batch committed
    /// before it) and the nanoseconds they took.
    pub syncs: AtomicU64,
    pub sync_ns: AtomicU64,
    /// The current medium fault ([`Fault::code`]; 0 none).
    pub fault: std::sync::atomic::AtomicU8,
    /// Fault episodes so far.
    pub fault_episodes: AtomicU64,
}

impl WriterStats {
    /// The medium fault writes currently meet (disk full, read-only).
    pub fn fault(&self) -> Option<Fault> {
        Fault::from_code(self.fault.load(Ordering::Relaxed))
    }

    /// Record a failed write: a medium fault starts an episode (logged
    /// once, not per request).
    fn note_fault(&self, fault: Option<Fault>, cause: &dyn std::fmt::Display) {
        let Some(f) = fault else { return };
        let before = self.fault.swap(f.code(), Ordering::Relaxed);
        if before != f.code() {
            self.fault_episodes.fetch_add(1, Ordering::Relaxed);
            tracing::error!(fault = f.as_str(), cause = %cause, "the store cannot take writes; reads go on");
        }
    }

    /// A write committed: any fault episode is over.
    fn clear_fault(&self) {
        let before = self.fault.swap(0, Ordering::Relaxed);
        if let Some(f) = Fault::from_code(before) {
            tracing::warn!(fault = f.as_str(), "the store takes writes again");
        }
    }

    /// Mean ops per committed batch.
    pub fn mean_batch(&self) -> f64 {
        let b = self.batches.load(Ordering::Relaxed);
        if b == 0 {
            0.0
        } else {
            self.ops.load(Ordering::Relaxed) as f64 / b as f64
        }
    }
}

/// Startup arguments.
#[derive(Clone)]
pub struct WriterArgs {
    pub db_path: std::path::PathBuf,
    pub vector_dims: usize,
    pub max_batch: usize,
    /// A batch is committed once its content reaches this many bytes.
    pub max_batch_bytes: usize,
    pub synchronous: crate::config::Synchronous,
    pub access_flush: Duration,
    pub access: Arc<AccessTracker>,
    pub stats: Arc<WriterStats>,
    /// How often the WAL is checkpointed.
    pub checkpoint_every: Duration,
    pub checkpoints: Arc<CheckpointStats>,
    /// Bumped after every commit (invalidates cached recalls).
    pub generation: Arc<Generation>,
    /// Where committed events go (the SSE broadcaster, via the registry).
    pub registry: Registry,
    /// The in-memory vector index, updated after each commit.
    pub index: Arc<VectorIndex>,
    /// Jobs queued as part of writes.
    pub jobs: JobPolicy,
    /// Woken after a commit that added or changed memories (the pipeline).
    pub wake: Arc<tokio::sync::Notify>,
    /// What the batch's timestamps read.
    pub clock: crate::clock::Clock,
    /// Where callers' writes reach the writer's thread; the supervisor
    /// makes a fresh one for every writer it starts.
    pub inbox: WriterInbox,
}

/// The actor (a unit struct; everything lives in [`WriterState`]).
pub struct StoreWriter;

/// State owned by the writer.
pub struct WriterState {
    /// The thread that owns the connection and commits the batches.
    /// Declared first, so when the state is dropped (a failed writer) it
    /// finishes what it was handed (and stops the checkpointer) before the
    /// syncer goes; a clean stop ends both in `post_stop`.
    lane: Lane,
    /// Syncs commits before their replies (`synchronous: full`); stopped
    /// after the lane, answering what it holds.
    syncer: Option<Syncer>,
    args: WriterArgs,
}

/// Quiet time after the last write before the keyword index is merged.
const IDLE_BEFORE_MERGE: Duration = Duration::from_millis(300);
/// Longest index merge per timer tick, so a merge never holds writes long.
const MERGE_BUDGET: Duration = Duration::from_millis(25);
/// Longest index merge when the writer stops (nobody waits for writes
/// then; a 1M-memory index merges in ~1.2 s).
const STOP_MERGE_BUDGET: Duration = Duration::from_secs(3);

impl Actor for StoreWriter {
    type Msg = WriterMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        me: ActorRef<WriterMsg>,
        args: WriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        let path = args.db_path.clone();
        let dims = args.vector_dims;
        // SQLite never syncs a commit itself: with `full` the sync thread
        // does, before the replies; with `normal` checkpoints do.
        let conn = tokio::task::spawn_blocking(move || {
            let conn = store::open_writer(&path, dims)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok::<_, StoreError>(conn)
        })
        .await??;
        let syncer = match args.synchronous {
            crate::config::Synchronous::Full => Some(Syncer::start(
                &args.db_path,
                args.registry.clone(),
                args.stats.clone(),
            )?),
            crate::config::Synchronous::Normal => None,
        };
        let checkpointer = Checkpointer::start(
            &args.db_path,
            args.checkpoint_every,
            args.checkpoints.clone(),
        )?;
        let lane = Lane::start(
            conn,
            args.inbox.clone(),
            LaneContext {
                args: args.clone(),
                sync: syncer.as_ref().and_then(|s| s.tx.clone()),
                checkpointer,
                me,
            },
        )?;
        Ok(WriterState { lane, syncer, args })
    }

    async fn post_start(
        &self,
        me: ActorRef<WriterMsg>,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        me.send_interval(state.args.access_flush, || WriterMsg::FlushAccess);
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<WriterMsg>,
        msg: WriterMsg,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // Writes from callers go straight to the inbox; these are the
            // actors' own (the sweeper's, the supervisor's).
            WriterMsg::Write(op) => state.lane.push(op)?,
            WriterMsg::FlushAccess => {
                let hits = state.args.access.drain();
                if !hits.is_empty() {
                    state.lane.push(WriteOp::Access { hits })?;
                }
            }
            WriterMsg::Checkpoint(reply) => {
                // Runs after every write handed over before it.
                let res = state
                    .lane
                    .run(|c, _| {
                        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
                        Ok(())
                    })
                    .await;
                let _ = reply.send(res);
            }
            WriterMsg::LaneFailed => {
                return Err("the store writer's thread failed inside a batch".into());
            }
            WriterMsg::InjectPanic => {
                let fault: Task = Box::new(|_, _| panic!("injected store writer fault"));
                if state.lane.inbox.enqueue(Item::Task(fault)).is_some() {
                    panic!("injected store writer fault");
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<WriterMsg>,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        // A clean stop (drain) commits what is left and folds the WAL back.
        let hits = state.args.access.drain();
        if !hits.is_empty() {
            let _ = state.lane.push(WriteOp::Access { hits });
        }
        // After many new rows (a `signet import` ends here), leave the
        // keyword index merged for the next start, within a bound; a merge
        // left half done is carried on by the next writer. The checkpoint
        // runs whatever the merge did. A lane that failed has nothing to
        // fold back. The thread then stops: ractor drops this state only
        // later (with the supervisor), and nothing may write after the
        // final checkpoint (not a late write, not an idle merge), let
        // alone once the workspace lock is released.
        state
            .lane
            .stop(|c, index| {
                if search::full_merge_due(c, index.since_full).unwrap_or(false) {
                    if let Err(e) = search::merge_index(c, STOP_MERGE_BUDGET, true) {
                        tracing::warn!(error = %e, "keyword index merge at stop failed");
                    }
                }
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
                Ok(())
            })
            .await;
        // Every batch is with the syncer now: it answers them and stops.
        if let Some(syncer) = state.syncer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(syncer)).await;
        }
        Ok(())
    }
}

/// An item handed to the writer's thread.
// Like [`WriterMsg`]: ops dominate and are moved once; boxing them would
// cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Item {
    Op(WriteOp),
    /// Run on the connection between batches (checkpoints, idle merge
    /// steps, the merge at stop, fault injection).
    Task(Task),
}

type Task = Box<dyn FnOnce(&Connection, &mut IndexState) + Send>;

/// What the writer's thread takes from its queue in one go.
enum Work {
    Batch(Vec<WriteOp>),
    Task(Task),
}

/// The queue between callers and the writer's thread.
#[derive(Default)]
struct Queue {
    items: std::collections::VecDeque<Item>,
    /// The thread waits for items (a push must wake it).
    idle: bool,
    /// No more items are taken (the writer is stopping, or failed).
    closed: bool,
}

/// Where writes reach the writer's thread: the queue it takes its batches
/// from. The supervisor makes one for every writer it starts and publishes
/// it beside the actor's ref, so a caller's write goes straight to the
/// thread instead of through the actor's mailbox (one task wake-up and one
/// message fewer per write; the actor's mailbox carries timers,
/// checkpoints and the actors' own writes). Once the writer stops or fails
/// the inbox refuses writes, and callers wait for the next writer.
#[derive(Clone, Default)]
pub struct WriterInbox(Arc<(std::sync::Mutex<Queue>, std::sync::Condvar)>);

impl WriterInbox {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `item`, or hand it back once the writer stopped.
    fn enqueue(&self, item: Item) -> Option<Item> {
        let mut q = self.queue();
        if q.closed {
            return Some(item);
        }
        q.items.push_back(item);
        if std::mem::take(&mut q.idle) {
            self.0 .1.notify_one();
        }
        None
    }

    /// Hand a write to the writer's thread; it comes back once the writer
    /// stopped or failed (it never ran).
    pub fn send(&self, op: WriteOp) -> Result<(), Box<WriteOp>> {
        match self.enqueue(Item::Op(op)) {
            None => Ok(()),
            Some(Item::Op(op)) => Err(Box::new(op)),
            Some(Item::Task(_)) => unreachable!("an op comes back as an op"),
        }
    }

    /// Refuse further items; the thread takes what is queued, then stops.
    fn close(&self) {
        self.queue().closed = true;
        self.0 .1.notify_one();
    }
}

/// The keyword index's state, kept by the writer's thread.
pub struct IndexState {
    /// Writes may have left small segments to merge.
    dirty: bool,
    /// Rows written since the index was last merged into one segment
    /// (see [`search::full_merge_due`]).
    since_full: u64,
    /// When the last write that touched it committed.
    last_write: std::time::Instant,
}

/// What the writer's thread owns besides the connection.
struct LaneContext {
    args: WriterArgs,
    /// The sync thread's inbox (`synchronous: full`).
    sync: Option<std::sync::mpsc::Sender<Finished>>,
    /// Folds the WAL back beside the writer; nudged after commits and
    /// stopped with the thread.
    checkpointer: Checkpointer,
    /// Told when a batch panicked, so the supervisor restarts the writer.
    me: ActorRef<WriterMsg>,
}

/// The writer's thread: it owns the connection and commits batch after
/// batch, each made of every write queued while the previous one ran (up
/// to `max_batch` ops or `max_batch_bytes`), so no batch waits for an
/// actor to be scheduled and the thread never idles while writes are
/// queued. After [`IDLE_BEFORE_MERGE`] without writes it merges the
/// keyword index, a bounded step at a time.
struct Lane {
    inbox: WriterInbox,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Lane {
    fn start(conn: Connection, inbox: WriterInbox, cx: LaneContext) -> std::io::Result<Lane> {
        let queue = inbox.clone();
        let handle = std::thread::Builder::new()
            .name("signet-writer".into())
            .spawn(move || {
                let failed = lane_loop(&conn, &queue, &cx);
                // The connection (and its open transaction) goes before
                // the actor hears: the restarted writer must not wait on
                // its lock.
                drop(conn);
                let me = cx.me.clone();
                drop(cx);
                if failed {
                    let _ = me.send_message(WriterMsg::LaneFailed);
                }
            })?;
        Ok(Lane {
            inbox,
            handle: Some(handle),
        })
    }

    /// Hand a write to the thread; an error (the write dropped, its caller
    /// told the writer failed) once the thread has stopped.
    fn push(&self, op: WriteOp) -> Result<(), StoreError> {
        self.inbox.send(op).map_err(|_| lane_gone())
    }

    /// Run `f` on the connection after every write handed over before it.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut IndexState) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (task, rx) = answered(f);
        if self.inbox.enqueue(Item::Task(task)).is_some() {
            return Err(lane_gone());
        }
        rx.await.map_err(|_| lane_gone())?
    }

    /// Run `last` after every write handed over so far, refuse any later
    /// one (its caller waits for the next writer), and wait for the thread
    /// to end.
    async fn stop(
        &mut self,
        last: impl FnOnce(&Connection, &mut IndexState) -> Result<(), StoreError> + Send + 'static,
    ) {
        let (task, rx) = answered(last);
        let queued = {
            let mut q = self.inbox.queue();
            let open = !q.closed;
            if open {
                q.items.push_back(Item::Task(task));
            }
            q.closed = true;
            open
        };
        self.inbox.0 .1.notify_one();
        if queued {
            if let Ok(Err(e)) = rx.await {
                tracing::warn!(error = %e, "final WAL checkpoint failed");
            }
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl Drop for Lane {
    /// The thread commits what it was handed, then stops.
    fn drop(&mut self) {
        self.inbox.close();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `f` as a task for the writer's thread, and where its result arrives.
fn answered<T: Send + 'static>(
    f: impl FnOnce(&Connection, &mut IndexState) -> Result<T, StoreError> + Send + 'static,
) -> (Task, tokio::sync::oneshot::Receiver<Result<T, StoreError>>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task: Task = Box::new(move |c, index| {
        let _ = tx.send(f(c, index));
    });
    (task, rx)
}

fn lane_gone() -> StoreError {
    StoreError::Task("the store writer's thread stopped".into())
}

/// The writer's thread: take what is queued, commit it, again, until the
/// inbox is closed and empty. A panic in a batch drops every write still
/// queued (their callers retry with the next writer) and returns true: the
/// thread then drops the connection (rolling the transaction back) and
/// tells the actor, which fails so the supervisor opens a fresh one.
fn lane_loop(conn: &Connection, inbox: &WriterInbox, cx: &LaneContext) -> bool {
    let ready = &inbox.0 .1;
    let mut index = IndexState {
        dirty: true,
        since_full: 0,
        last_write: std::time::Instant::now(),
    };
    loop {
        let work = {
            let mut q = inbox.queue();
            loop {
                if !q.items.is_empty() || q.closed {
                    break;
                }
                q.idle = true;
                if !index.dirty {
                    q = ready.wait(q).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let quiet = index.last_write.elapsed();
                if quiet < IDLE_BEFORE_MERGE {
                    q = ready
                        .wait_timeout(q, IDLE_BEFORE_MERGE - quiet)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    continue;
                }
                // Quiet long enough: one merge step, as a task (a caller's
                // write waits at most one step).
                q.items.push_back(Item::Task(Box::new(merge_step)));
            }
            q.idle = false;
            match take(&mut q.items, cx.args.max_batch, cx.args.max_batch_bytes) {
                Some(w) => w,
                None => return false,
            }
        };
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match work {
            Work::Batch(ops) => commit(conn, ops, cx, &mut index),
            Work::Task(f) => {
                f(conn, &mut index);
                // A merge step writes to the WAL too.
                cx.checkpointer.nudge();
            }
        }));
        if done.is_err() {
            let left = {
                let mut q = inbox.queue();
                q.closed = true;
                std::mem::take(&mut q.items)
            };
            drop(left);
            return true;
        }
    }
}

/// One bounded step of the idle merge of the keyword index: a full merge
/// once enough rows came since the last one, else a partial one.
fn merge_step(c: &Connection, index: &mut IndexState) {
    let step = search::full_merge_due(c, index.since_full)
        .and_then(|full| Ok((full, search::merge_index(c, MERGE_BUDGET, full)?)));
    match step {
        Ok((full, more)) => {
            if full && !more {
                index.since_full = 0;
            }
            index.dirty = more;
        }
        Err(e) => {
            // Tried again after the next writes.
            tracing::warn!(error = %e, "keyword index merge failed");
            index.dirty = false;
        }
    }
}

/// The next work from the queue: a task alone, or the ops before the next
/// task, up to `max_ops` or `max_bytes` (at least one op).
fn take(
    items: &mut std::collections::VecDeque<Item>,
    max_ops: usize,
    max_bytes: usize,
) -> Option<Work> {
    match items.pop_front()? {
        Item::Task(f) => Some(Work::Task(f)),
        Item::Op(first) => {
            let mut bytes = first.approx_bytes();
            let mut ops = vec![first];
            while ops.len() < max_ops && bytes < max_bytes {
                match items.front() {
                    Some(Item::Op(op)) => bytes += op.approx_bytes(),
                    _ => break,
                }
                if let Some(Item::Op(op)) = items.pop_front() {
                    ops.push(op);
                }
            }
            Some(Work::Batch(ops))
        }
    }
}

/// Commit `ops` as one transaction; their callers are answered once it is
/// on disk (by the sync thread), or at once with `synchronous: normal`.
fn commit(conn: &Connection, ops: Vec<WriteOp>, cx: &LaneContext, index: &mut IndexState) {
    let args = &cx.args;
    let n = ops.len() as u64;
    // Access counts never touch the keyword index.
    let rows: u64 = ops.iter().map(WriteOp::rows).sum();
    if ops.iter().any(|op| !matches!(op, WriteOp::Access { .. })) {
        index.dirty = true;
        index.since_full += rows;
        index.last_write = std::time::Instant::now();
    }
    let now = args.clock.now();
    let ctx = BatchContext {
        index: args.index.clone(),
        jobs: args.jobs,
        wake: args.wake.clone(),
        now,
        now_iso: store::to_iso(now),
    };
    let stats = &args.stats;
    let t = std::time::Instant::now();
    let finished = run_batch(conn, ops, stats, &args.generation, &ctx);
    stats
        .busy_ns
        .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    match (finished, &cx.sync) {
        // Answered once the sync thread has the commit on disk.
        (Some(f), Some(tx)) if f.committed => {
            if let Err(gone) = tx.send(f) {
                gone.0
                    .fail(&StoreError::Commit("the WAL sync thread is gone".into()));
            }
        }
        (Some(f), _) => f.deliver(&args.registry),
        (None, _) => {}
    }
    cx.checkpointer.nudge();
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.ops.fetch_add(n, Ordering::Relaxed);
    stats.max_batch.fetch_max(n, Ordering::Relaxed);
}

/// What a batch needs beyond the connection.
struct BatchContext {
    index: Arc<VectorIndex>,
    jobs: JobPolicy,
    wake: Arc<tokio::sync::Notify>,
    /// The batch's time: every row it stamps carries it.
    now: DateTime<Utc>,
    now_iso: String,
}

/// What one op produced, before its reply is sent.
enum Outcome {
    /// Stored vectors, applied to the index after the commit.
    Embedded(Vec<(i64, Vec<f32>)>),
    /// A job step and the events it announces.
    Job(JobReply, Vec<Draft>),
    Remembered(RememberOutcome),
    Mutated(Vec<MutationOutcome>),
    Recovered(MutationOutcome),
    Swept(usize),
    Repaired(RepairOutcome),
    Session(Option<SummaryJob>),
    Imported(Vec<transfer::Outcome>),
    Vacuumed((i64, i64)),
    Nothing,
}

/// Execute one op on the open transaction.
fn execute(conn: &Connection, op: &WriteOp, ctx: &BatchContext) -> Result<Outcome, StoreError> {
    let policy = ctx.jobs;
    let own = |audit: &Audit| audit.actor_type.as_deref() == Some("pipeline");
    Ok(match op {
        WriteOp::Remember { new, audit, .. } => {
            let out = memories::insert(conn, new, audit, &ctx.now_iso)?;
            if !out.deduped && policy.extract_on_write && !own(audit) {
                jobs::enqueue(
                    conn,
                    &out.record.id,
                    "extract",
                    policy.max_attempts,
                    ctx.now,
                )?;
            }
            Outcome::Remembered(out)
        }
        WriteOp::Modify { reqs, audit, .. } => {
            let outs: Vec<MutationOutcome> = reqs
                .iter()
                .map(|r| memories::modify(conn, r, audit, &ctx.now_iso))
                .collect::<Result<_, _>>()?;
            for o in &outs {
                if o.status == MutationStatus::Updated && o.content_changed == Some(true) {
                    content_changed(conn, &o.id, policy, own(audit), ctx.now)?;
                }
            }
            Outcome::Mutated(outs)
        }
        WriteOp::Import { batch, target, .. } => Outcome::Imported(transfer::import(
            conn,
            batch,
            target,
            &ctx.now_iso,
            ctx.now,
        )?),
        WriteOp::Embed { items, model, .. } => Outcome::Embedded(vectors::store(
            conn,
            items,
            model,
            ctx.index.dims(),
            &ctx.now_iso,
        )?),
        WriteOp::Job { op, .. } => {
            let (reply, drafts) = job_step(conn, op, &ctx.now_iso)?;
            Outcome::Job(reply, drafts)
        }
        WriteOp::Forget { reqs, audit, .. } => Outcome::Mutated(
            reqs.iter()
                .map(|r| memories::forget(conn, r, audit, &ctx.now_iso))
                .collect::<Result<_, _>>()?,
        ),
        WriteOp::Recover { req, audit, .. } => {
            Outcome::Recovered(memories::recover(conn, req, audit, ctx.now)?)
        }
        WriteOp::Access { hits } => {
            memories::apply_access(conn, hits, &ctx.now_iso)?;
            Outcome::Nothing
        }
        WriteOp::Sweep {
            step,
            cutoff,
            batch,
            ..
        } => Outcome::Swept(maintenance::sweep_batch(
            conn,
            *step,
            cutoff,
            *batch,
            &ctx.now_iso,
        )?),
        WriteOp::Vacuum { pages, .. } => {
            Outcome::Vacuumed(maintenance::incremental_vacuum(conn, *pages)?)
        }
        WriteOp::Repair { action, audit, .. } => {
            Outcome::Repaired(maintenance::repair(conn, *action, audit, ctx.now)?)
        }
        WriteOp::Feedback {
            session_key,
            ratings,
            ..
        } => {
            memories::record_feedback(conn, session_key, ratings, &ctx.now_iso)?;
            Outcome::Nothing
        }
        WriteOp::Session { op, .. } => Outcome::Session(match op {
            SessionWrite::Checkpoint(c) => {
                let cutoff =
                    store::to_iso(ctx.now - chrono::Duration::days(sessions::CHECKPOINT_DAYS));
                sessions::insert_checkpoint(conn, c, &ctx.now_iso, &cutoff)?;
                None
            }
            SessionWrite::QueueSummary(j) => {
                sessions::insert_summary_job(conn, j, &ctx.now_iso)?;
                None
            }
            SessionWrite::LeaseSummary { stale } => {
                sessions::lease_summary_job(conn, &ctx.now_iso, stale)?
            }
            SessionWrite::CompleteSummary(s) => {
                sessions::complete_summary_job(conn, s, &ctx.now_iso)?;
                None
            }
            SessionWrite::FailSummary {
                id,
                error,
                max_attempts,
            } => {
                sessions::fail_summary_job(conn, id, error, *max_attempts, ctx.now)?;
                None
            }
        }),
        WriteOp::Revoke {
            kind,
            value,
            at,
            by,
            ..
        } => {
            conn.prepare_cached(
                "INSERT INTO revoked_tokens(kind, value, revoked_at, revoked_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(kind, value) DO UPDATE SET revoked_at = MAX(revoked_at, excluded.revoked_at)",
            )?
            .execute(rusqlite::params![kind, value, at, by])?;
            Outcome::Nothing
        }
    })
}

/// A memory's content changed: its vector is stale. Drop it and queue the
/// follow-up jobs.
fn content_changed(
    conn: &Connection,
    id: &str,
    policy: JobPolicy,
    own: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rowid: Option<i64> = conn
        .prepare_cached("SELECT rowid FROM memories WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .ok();
    if let Some(rowid) = rowid {
        vectors::remove(conn, rowid)?;
    }
    if policy.embed_on_change {
        jobs::enqueue(conn, id, "embed", policy.max_attempts, now)?;
    }
    if policy.extract_on_write && !own {
        jobs::enqueue(conn, id, "extract", policy.max_attempts, now)?;
    }
    Ok(())
}

/// Run one job step; `job.completed` / `job.dead` events carry the
/// memory's scope so scoped SSE clients only see their own.
fn job_step(conn: &Connection, op: &JobOp, at: &str) -> Result<(JobReply, Vec<Draft>), StoreError> {
    Ok(match op {
        JobOp::Lease { kinds, now } => (
            JobReply::Leased(jobs::lease(conn, kinds, *now)?),
            Vec::new(),
        ),
        JobOp::Complete {
            id,
            extraction_status,
            now,
        } => {
            let done = jobs::complete(conn, id, *now)?;
            let mut drafts = Vec::new();
            if done {
                if let Some(job) = jobs::get(conn, id)? {
                    if let Some(status) = extraction_status {
                        conn.prepare_cached(
                            "UPDATE memories SET extraction_status = ?2 WHERE id = ?1",
                        )?
                        .execute(rusqlite::params![job.memory_id, status])?;
                    }
                    drafts.push(job_event(conn, "job.completed", &job)?);
                }
            }
            (JobReply::Completed(done), drafts)
        }
        JobOp::Fail { id, error, now } => {
            let job = jobs::fail(conn, id, error, *now)?;
            let mut drafts = Vec::new();
            if let Some(j) = job.as_ref().filter(|j| j.status == "dead") {
                mark_dead(conn, j)?;
                drafts.push(job_event(conn, "job.dead", j)?);
            }
            (JobReply::Failed(job), drafts)
        }
        JobOp::Reap { timeout_secs, now } => {
            let back = jobs::reap(conn, *timeout_secs, *now)?;
            let mut drafts = Vec::new();
            for j in back.iter().filter(|j| j.status == "dead") {
                mark_dead(conn, j)?;
                drafts.push(job_event(conn, "job.dead", j)?);
            }
            (JobReply::Reaped(back), drafts)
        }
        JobOp::Release { now } => (
            JobReply::Released(jobs::release_all(conn, *now)?),
            Vec::new(),
        ),
        JobOp::Propose {
            memory_id,
            proposal,
            audit,
        } => {
            memories::write_history(
                conn,
                memory_id,
                "proposed",
                None,
                proposal["content"].as_str(),
                audit,
                proposal["reason"].as_str(),
                Some(&proposal.to_string()),
                at,
            )?;
            (JobReply::Proposed, Vec::new())
        }
    })
}

/// A dead extract job leaves its memory marked `failed`.
fn mark_dead(conn: &Connection, j: &Job) -> Result<(), StoreError> {
    if j.kind == "extract" {
        conn.prepare_cached("UPDATE memories SET extraction_status = 'failed' WHERE id = ?1")?
            .execute([&j.memory_id])?;
    }
    Ok(())
}

fn job_event(conn: &Connection, kind: &'static str, job: &Job) -> Result<Draft, StoreError> {
    let scope: Option<(Option<String>, Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT project, agent, user FROM memories WHERE id = ?1")?
        .query_row([&job.memory_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ok();
    let (project, agent, user) = scope.unwrap_or((None, None, None));
    Ok(Draft {
        kind,
        project,
        agent,
        user,
        data: serde_json::json!({
            "id": job.id, "memoryId": job.memory_id, "kind": job.kind, "status": job.status,
            "attempts": job.attempts, "error": job.error,
        }),
    })
}

/// Run `f` inside a savepoint: its writes are kept only if it succeeds.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    sql(conn, "SAVEPOINT op")?;
    match f(conn) {
        Ok(v) => {
            sql(conn, "RELEASE op")?;
            Ok(v)
        }
        Err(e) => {
            sql(conn, "ROLLBACK TO op")?;
            sql(conn, "RELEASE op")?;
            Err(e)
        }
    }
}

/// Run a parameterless statement through the statement cache.
fn sql(conn: &Connection, text: &str) -> Result<(), StoreError> {
    conn.prepare_cached(text)?.execute([])?;
    Ok(())
}

/// Whether `op` can change a recall result. Access counts and feedback do
/// not (usage never bends relevance), nor do job-queue steps (the pipeline
/// leases on every poll; what a job changes in memories comes as its own
/// remember or modify) or session records, so a batch of only those leaves
/// cached recalls valid.
fn moves_data(op: &WriteOp) -> bool {
    !matches!(
        op,
        WriteOp::Access { .. }
            | WriteOp::Feedback { .. }
            | WriteOp::Session { .. }
            | WriteOp::Job { .. }
            | WriteOp::Vacuum { .. }
    )
}

/// Whether `op` may change or remove indexed rows (the keyword doclists,
/// rows and neighbours kept in memory are dropped after it). Of the ops
/// that move data, a remember (an insert, or nothing when it dedupes), an
/// embedding and a revocation leave every indexed row as it was.
fn rewrites_index(op: &WriteOp) -> bool {
    moves_data(op)
        && !matches!(
            op,
            WriteOp::Remember { .. } | WriteOp::Embed { .. } | WriteOp::Revoke { .. }
        )
}

/// Execute one batch in one transaction and commit it; returns what the
/// batch owes its callers, or `None` when no transaction could be started
/// (its callers are then answered at once).
///
/// Ops run back to back without savepoints: every expected refusal
/// (duplicate, version conflict, ...) is a result, not an error, so an
/// error means something unusual. Then the transaction is rolled back and
/// the batch re-run with a savepoint per op, so only the failing op fails.
/// Savepoints on the fast path would copy every page an op touches into the
/// statement journal, a large share of the writer's time.
fn run_batch(
    conn: &Connection,
    ops: Vec<WriteOp>,
    stats: &WriterStats,
    generation: &Generation,
    ctx: &BatchContext,
) -> Option<Finished> {
    if let Err(e) = sql(conn, "BEGIN IMMEDIATE") {
        stats.commit_failures.fetch_add(1, Ordering::Relaxed);
        stats.note_fault(e.fault(), &e);
        for op in ops {
            reply(op, Err(StoreError::commit(&e)));
        }
        return None;
    }
    let moves_data = ops.iter().any(moves_data);
    let rewrites = ops.iter().any(rewrites_index);
    let mut results: Vec<Result<Outcome, StoreError>> = Vec::with_capacity(ops.len());
    for op in &ops {
        match execute(conn, op, ctx) {
            Ok(o) => results.push(Ok(o)),
            Err(e) => {
                tracing::warn!(error = %e, "write failed inside a batch; re-running the batch op by op");
                results.clear();
                break;
            }
        }
    }
    if results.len() != ops.len() {
        let restarted = sql(conn, "ROLLBACK").and_then(|_| sql(conn, "BEGIN IMMEDIATE"));
        if let Err(e) = restarted {
            stats.note_fault(e.fault(), &e);
            for op in ops {
                reply(op, Err(StoreError::commit(&e)));
            }
            return None;
        }
        results = ops
            .iter()
            .map(|op| in_savepoint(conn, |c| execute(c, op, ctx)))
            .collect();
    }
    let t = std::time::Instant::now();
    let commit = sql(conn, "COMMIT");
    stats
        .commit_ns
        .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    if commit.is_ok() {
        // The index follows SQLite: vectors appear once committed, and
        // before the generation moves (a recall cached at the new
        // generation must see them).
        for r in results.iter().flatten() {
            match r {
                Outcome::Embedded(stored) => {
                    for (rowid, v) in stored {
                        ctx.index.upsert(*rowid, v);
                    }
                }
                Outcome::Imported(lines) => {
                    for l in lines {
                        if let transfer::Outcome::Imported {
                            vector: Some((rowid, v)),
                            ..
                        } = l
                        {
                            ctx.index.upsert(*rowid, v);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    match &commit {
        // Before any reply: a caller that reads after its write must never
        // be served a cached recall from before it.
        Ok(()) if moves_data => {
            if rewrites {
                generation.bump_rewrites();
            }
            generation.bump();
        }
        Ok(()) => {}
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            stats.commit_failures.fetch_add(1, Ordering::Relaxed);
            if e.fault().is_none() {
                tracing::error!(error = %e, "group commit failed");
            }
        }
    }
    // A medium fault is logged once per episode, and the episode ends with
    // the next commit that writes.
    match &commit {
        Err(e) => stats.note_fault(e.fault(), e),
        Ok(()) => match results
            .iter()
            .find_map(|r| r.as_ref().err().and_then(|e| e.fault()))
        {
            Some(f) => stats.note_fault(Some(f), &"a write in the batch failed"),
            None if results.iter().any(|r| r.is_ok()) => stats.clear_fault(),
            None => {}
        },
    }
    if commit.is_ok() {
        let wake = results.iter().flatten().any(|r| match r {
            Outcome::Remembered(r) => !r.deduped,
            Outcome::Mutated(_) => true,
            Outcome::Imported(lines) => lines
                .iter()
                .any(|l| matches!(l, transfer::Outcome::Imported { queued: true, .. })),
            _ => false,
        });
        if wake {
            ctx.wake.notify_one();
        }
    }
    let results = match &commit {
        Ok(()) => results,
        Err(e) => results
            .into_iter()
            .map(|_| Err(StoreError::commit(e)))
            .collect(),
    };
    Some(Finished {
        ops,
        results,
        committed: commit.is_ok(),
    })
}

/// A batch after its COMMIT: the answers and events it owes, delivered
/// once the commit is on disk.
struct Finished {
    ops: Vec<WriteOp>,
    results: Vec<Result<Outcome, StoreError>>,
    /// Whether the batch committed (else every result is the error).
    committed: bool,
}

impl Finished {
    /// Publish the events (only now: a subscriber never sees a write that
    /// could still be lost), then answer every caller. The events are
    /// built here, on the sync thread with `synchronous: full`, not on the
    /// writer's: one batch's events cost the writer ~4% of its time.
    fn deliver(self, registry: &Registry) {
        if self.committed {
            let drafts: Vec<Draft> = self.results.iter().flatten().flat_map(events_of).collect();
            if !drafts.is_empty() {
                registry.publish_events(drafts);
            }
        }
        for (op, res) in self.ops.into_iter().zip(self.results) {
            reply(op, res);
        }
    }

    /// The commit could not be put on disk: nothing is published and every
    /// caller gets the error.
    fn fail(self, e: &StoreError) {
        for op in self.ops {
            reply(op, Err(StoreError::commit(e)));
        }
    }
}

/// Syncs the WAL beside the writer and answers each batch once its commit
/// is on disk (`server.synchronous: full`). The writer commits with
/// `synchronous=NORMAL` (frames written, not synced) and goes on with the
/// next batch while this thread's `fdatasync` runs; one sync covers every
/// batch committed before it. So a reply still means the write is on
/// disk, and the writer no longer waits for the disk between batches.
/// Dropping the [`Syncer`] answers what is queued and stops the thread.
pub struct Syncer {
    tx: Option<std::sync::mpsc::Sender<Finished>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(
        db: &std::path::Path,
        registry: Registry,
        stats: Arc<WriterStats>,
    ) -> std::io::Result<Syncer> {
        let (tx, rx) = std::sync::mpsc::channel::<Finished>();
        let mut wal = crate::store::checkpoint::SyncFile::wal(db);
        let handle = std::thread::Builder::new()
            .name("signet-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut due = vec![first];
                    due.extend(rx.try_iter());
                    let t = std::time::Instant::now();
                    let synced = wal.sync();
                    stats
                        .sync_ns
                        .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    stats.syncs.fetch_add(1, Ordering::Relaxed);
                    match synced {
                        // A panic while answering one batch (its callers then
                        // time out) must not stop the answers of the next.
                        Ok(()) => due.into_iter().for_each(|f| {
                            let answered =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    f.deliver(&registry)
                                }));
                            if answered.is_err() {
                                tracing::error!("answering a committed batch panicked");
                            }
                        }),
                        Err(e) => {
                            let fault = match e.kind() {
                                std::io::ErrorKind::StorageFull => Some(Fault::DiskFull),
                                std::io::ErrorKind::ReadOnlyFilesystem => Some(Fault::ReadOnly),
                                _ => None,
                            };
                            let text = format!("sync of the WAL failed: {e}");
                            let err = match fault {
                                Some(f) => StoreError::Fault(f, text),
                                None => StoreError::Commit(text),
                            };
                            stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                            stats.note_fault(fault, &err);
                            if fault.is_none() {
                                tracing::error!(error = %err, "group commit not durable");
                            }
                            due.into_iter().for_each(|f| f.fail(&err));
                        }
                    }
                }
            })?;
        Ok(Syncer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn draft(kind: &'static str, r: &MemoryRecord, data: serde_json::Value) -> Draft {
    Draft {
        kind,
        project: r.project.clone(),
        agent: r.agent.clone(),
        user: r.user.clone(),
        data,
    }
}

/// The events an op's outcome announces.
fn events_of(o: &Outcome) -> Vec<Draft> {
    match o {
        Outcome::Remembered(r) if !r.deduped => {
            let m = &r.record;
            vec![draft(
                "memory.created",
                m,
                serde_json::json!({
                    "id": m.id, "content": m.content, "type": m.kind, "tags": m.tags,
                    "pinned": m.pinned, "importance": m.importance, "who": m.who,
                    "project": m.project, "created_at": m.created_at,
                }),
            )]
        }
        Outcome::Repaired(r) => r
            .deleted
            .iter()
            .map(|m| {
                draft(
                    "memory.deleted",
                    m,
                    serde_json::json!({
                        "id": m.id, "version": m.version, "contentChanged": null,
                        "project": m.project, "updated_by": m.updated_by,
                    }),
                )
            })
            .collect(),
        Outcome::Remembered(_)
        | Outcome::Nothing
        | Outcome::Swept(_)
        | Outcome::Embedded(_)
        | Outcome::Imported(_)
        | Outcome::Vacuumed(_)
        | Outcome::Session(_) => Vec::new(),
        Outcome::Job(_, drafts) => drafts.clone(),
        Outcome::Mutated(list) => list.iter().filter_map(mutation_event).collect(),
        Outcome::Recovered(m) => mutation_event(m).into_iter().collect(),
    }
}

fn mutation_event(m: &MutationOutcome) -> Option<Draft> {
    let kind = match m.status {
        MutationStatus::Updated => "memory.updated",
        MutationStatus::Deleted => "memory.deleted",
        MutationStatus::Recovered => "memory.recovered",
        _ => return None,
    };
    let r = m.record.as_ref()?;
    Some(draft(
        kind,
        r,
        serde_json::json!({
            "id": m.id, "version": m.new_version, "contentChanged": m.content_changed,
            "project": r.project, "updated_by": r.updated_by,
        }),
    ))
}

/// Answer the caller of `op` (who may have timed out and gone: then the
/// send fails and nothing is to be done).
fn reply(op: WriteOp, res: Result<Outcome, StoreError>) {
    let mismatch = || StoreError::Task("write outcome does not match its op".into());
    match op {
        WriteOp::Remember { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Remembered(r) => Ok(r),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Modify { reply, .. } | WriteOp::Forget { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Mutated(r) => Ok(r),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Recover { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Recovered(r) => Ok(r),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Access { .. } => {
            if let Err(e) = res {
                tracing::warn!(error = %e, "access counts not written");
            }
        }
        WriteOp::Revoke { reply, .. } | WriteOp::Feedback { reply, .. } => {
            let _ = reply.send(res.map(|_| ()));
        }
        WriteOp::Session { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Session(j) => Ok(j),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Embed { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Embedded(v) => Ok(v.len()),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Job { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Job(r, _) => Ok(r),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Sweep { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Swept(n) => Ok(n),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Repair { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Repaired(r) => Ok(r),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Import { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Imported(r) => Ok(r),
                _ => Err(mismatch()),
            }));
        }
        WriteOp::Vacuum { reply, .. } => {
            let _ = reply.send(res.and_then(|o| match o {
                Outcome::Vacuumed(v) => Ok(v),
                _ => Err(mismatch()),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::concurrency::{oneshot, OneshotReceiver};

    /// A batch of one revocation whose answer arrives on the returned
    /// receiver.
    fn batch() -> (Finished, OneshotReceiver<Result<(), StoreError>>) {
        let (tx, rx) = oneshot();
        let op = WriteOp::Revoke {
            kind: "jti",
            value: "t".into(),
            at: 0,
            by: "test".into(),
            reply: RpcReplyPort::from(tx),
        };
        let f = Finished {
            ops: vec![op],
            results: vec![Ok(Outcome::Nothing)],
            committed: true,
        };
        (f, rx)
    }

    /// A revocation, for the batch bounds.
    fn op() -> Item {
        let (tx, _rx) = oneshot();
        Item::Op(WriteOp::Revoke {
            kind: "jti",
            value: "t".into(),
            at: 0,
            by: "test".into(),
            reply: RpcReplyPort::from(tx),
        })
    }

    fn task() -> Item {
        Item::Task(Box::new(|_, _| {}))
    }

    /// What `take` made of the queue's front: ops in a batch, or a task.
    fn taken(q: &mut std::collections::VecDeque<Item>, ops: usize, bytes: usize) -> String {
        match take(q, ops, bytes) {
            Some(Work::Batch(b)) => format!("batch {}", b.len()),
            Some(Work::Task(_)) => "task".into(),
            None => "nothing".into(),
        }
    }

    #[test]
    fn a_batch_takes_the_queued_writes_up_to_its_bounds_and_stops_at_a_task() {
        let mut q: std::collections::VecDeque<Item> =
            [op(), op(), op(), task(), op(), task(), task()]
                .into_iter()
                .collect();
        // Every op before the task, none after it; the task alone next.
        assert_eq!(taken(&mut q, 256, 1 << 20), "batch 3");
        assert_eq!(taken(&mut q, 256, 1 << 20), "task");
        assert_eq!(taken(&mut q, 256, 1 << 20), "batch 1");
        assert_eq!(taken(&mut q, 256, 1 << 20), "task");
        assert_eq!(taken(&mut q, 256, 1 << 20), "task");
        assert_eq!(taken(&mut q, 256, 1 << 20), "nothing");
        // The op bound.
        let mut q: std::collections::VecDeque<Item> = (0..5).map(|_| op()).collect();
        assert_eq!(taken(&mut q, 2, 1 << 20), "batch 2");
        assert_eq!(taken(&mut q, 2, 1 << 20), "batch 2");
        assert_eq!(taken(&mut q, 2, 1 << 20), "batch 1");
        // The byte bound (a revocation counts 256 bytes): ops are added
        // until it is reached, and an op at or past it goes alone.
        let mut q: std::collections::VecDeque<Item> = (0..5).map(|_| op()).collect();
        assert_eq!(taken(&mut q, 256, 600), "batch 3");
        assert_eq!(taken(&mut q, 256, 600), "batch 2");
        let mut q: std::collections::VecDeque<Item> = (0..2).map(|_| op()).collect();
        assert_eq!(taken(&mut q, 256, 100), "batch 1");
        assert_eq!(taken(&mut q, 256, 100), "batch 1");
    }

    #[tokio::test]
    async fn a_batch_is_answered_after_its_wal_sync_and_a_failed_sync_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("m.db");
        let stats = Arc::new(WriterStats::default());
        let syncer = Syncer::start(&db, Registry::default(), stats.clone()).expect("start");
        let send = |f: Finished| {
            if syncer.tx.as_ref().expect("open").send(f).is_err() {
                panic!("sync thread gone");
            }
        };
        // No WAL file: the sync fails and the caller hears it.
        let (f, rx) = batch();
        send(f);
        let err = rx
            .await
            .expect("answered")
            .expect_err("a failed sync is an error");
        assert!(err.to_string().contains("sync of the WAL failed"), "{err}");
        assert_eq!(stats.commit_failures.load(Ordering::Relaxed), 1);
        // With the file there, the answer is the batch's own result.
        std::fs::write(crate::store::checkpoint::wal_path(&db), b"frames").expect("wal");
        let (f, rx) = batch();
        send(f);
        rx.await.expect("answered").expect("synced");
        assert_eq!(stats.syncs.load(Ordering::Relaxed), 2);
        // Dropping the syncer answers what it still holds.
        let (f, rx) = batch();
        send(f);
        drop(syncer);
        rx.await
            .expect("answered before the thread stopped")
            .expect("synced");
    }
}
