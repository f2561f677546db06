//! The extraction pipeline: a background front that keeps vectors and
//! extracted facts up to date by calling the memory operations, as any
//! other front does. It runs as an actor under the supervisor (which
//! spawns it through [`spawner`], knowing nothing of its types), but it
//! lives above the domain layer: `actors` never imports `memory`.
//!
//! Each `Tick` does one round of work, then schedules the next: at once if
//! the round found work, else when a commit wakes it, the provider becomes
//! ready, or the poll interval passes.
//! 1. **Reap** leases older than the lease timeout (every 30 s).
//! 2. **Backfill**: the next batch of live memories without a vector, in
//!    rowid order from a cursor, embedded in one provider call (the native
//!    model runs it on its low-priority thread) and stored through the
//!    writer. New memories need no job row: the remember path stays one
//!    insert. A failing provider backs the backfill off (2 s doubling to
//!    60 s); the cursor only moves past stored vectors, so nothing is lost.
//!    While the daemon takes more than 200 writes/s the backfill paces
//!    itself to one batch per second.
//! 3. **Jobs** from SQLite: `embed` (re-embed after a content change or a
//!    repair) and `extract` (LLM facts and decisions), with the lease,
//!    backoff and dead-letter rules of [`crate::store::jobs`].
//!
//! All writes go through the store writer. Time comes from [`Clock`],
//! which follows tokio's clock, so tests drive backoff and lease expiry
//! with `tokio::time::pause`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::actors::store_writer::{JobOp, JobReply};
use crate::config::Config;
use crate::embed::{EmbedService, Lane};
use crate::extract::parse::{Action, Fact};
use crate::extract::{Llm, Report};
use crate::memory::ops::PipelineStats;
use crate::memory::{Caller, MemoryService};
use crate::store::jobs::Job;
use crate::store::memories::Scope;

/// Wall time that advances with tokio's clock (so a paused test runtime
/// moves it with `tokio::time::advance`), plus the daemon clock's offset
/// (so job stamps age with the rest of the store when tests move it).
#[derive(Debug, Clone)]
pub struct Clock {
    wall: DateTime<Utc>,
    at: Instant,
    base: crate::clock::Clock,
}

impl Clock {
    /// A clock reading the real time now.
    pub fn start() -> Self {
        Clock::following(crate::clock::Clock::default())
    }

    /// A clock that also follows `base`'s offset.
    pub fn following(base: crate::clock::Clock) -> Self {
        Clock {
            wall: Utc::now(),
            at: Instant::now(),
            base,
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().saturating_duration_since(self.at);
        self.wall + chrono::Duration::from_std(elapsed).unwrap_or_default() + self.base.offset()
    }
}

/// Startup arguments.
#[derive(Clone)]
pub struct PipelineArgs {
    pub config: Arc<Config>,
    pub memories: MemoryService,
    pub embed: Arc<EmbedService>,
    pub llm: Option<Arc<Llm>>,
    pub wake: Arc<tokio::sync::Notify>,
    pub stats: Arc<PipelineStats>,
    pub clock: Clock,
    /// The writer's counters: the backfill reads the write rate from them.
    pub writer: Arc<crate::actors::store_writer::WriterStats>,
}

/// The supervisor's way to (re)start the pipeline with `args`.
pub fn spawner(args: PipelineArgs) -> crate::actors::supervisor::Spawner {
    Arc::new(move |supervisor: ractor::ActorCell| {
        let args = args.clone();
        Box::pin(async move {
            let (r, _) = Actor::spawn_linked(None, Pipeline, args, supervisor).await?;
            Ok(r.get_cell())
        })
    })
}

/// Messages to the pipeline.
pub enum PipelineMsg {
    /// Do one round of work.
    Tick,
}

/// The actor.
pub struct Pipeline;

/// State between rounds.
pub struct PipelineState {
    args: PipelineArgs,
    /// Backfill position: rowids at or below it were handled.
    cursor: i64,
    backfill_failures: u32,
    backfill_retry_at: Option<Instant>,
    last_reap: Option<Instant>,
    last_rescan: Instant,
    waiter: Option<tokio::task::JoinHandle<()>>,
    /// Writer ops and time at the last backfill batch (the load signal).
    last_batch: (u64, Instant),
}

/// How often stale leases are looked for.
const REAP_EVERY: Duration = Duration::from_secs(30);
/// How often the backfill cursor restarts from the first row (a rowid
/// below the cursor can reappear after a hard delete).
const RESCAN_EVERY: Duration = Duration::from_secs(60);
/// Writes per second above which the daemon counts as busy: the backfill
/// then runs at most one batch per [`BUSY_PACE`], so a write storm keeps
/// (nearly) all the CPU and the backfill still makes progress.
const BUSY_WRITES_PER_SEC: f64 = 200.0;
const BUSY_PACE: Duration = Duration::from_secs(1);

/// Jobs run per round before the actor yields.
const JOBS_PER_ROUND: usize = 4;

impl Actor for Pipeline {
    type Msg = PipelineMsg;
    type State = PipelineState;
    type Arguments = PipelineArgs;

    async fn pre_start(
        &self,
        me: ActorRef<PipelineMsg>,
        args: PipelineArgs,
    ) -> Result<PipelineState, ActorProcessingErr> {
        me.send_message(PipelineMsg::Tick)?;
        Ok(PipelineState {
            args,
            cursor: 0,
            backfill_failures: 0,
            backfill_retry_at: None,
            last_reap: None,
            last_rescan: Instant::now(),
            waiter: None,
            last_batch: (0, Instant::now()),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<PipelineMsg>,
        msg: PipelineMsg,
        st: &mut PipelineState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PipelineMsg::Tick => {
                let mut busy = false;
                if st.last_reap.is_none_or(|t| t.elapsed() >= REAP_EVERY) {
                    st.last_reap = Some(Instant::now());
                    reap(st).await;
                }
                busy |= backfill(st).await;
                busy |= run_jobs(st).await;
                busy |= run_summary(st).await;
                schedule(&me, st, busy);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<PipelineMsg>,
        st: &mut PipelineState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(w) = st.waiter.take() {
            w.abort();
        }
        Ok(())
    }
}

fn schedule(me: &ActorRef<PipelineMsg>, st: &mut PipelineState, busy: bool) {
    if let Some(w) = st.waiter.take() {
        w.abort();
    }
    if busy {
        let _ = me.send_message(PipelineMsg::Tick);
        return;
    }
    let me = me.clone();
    let wake = st.args.wake.clone();
    let embed = st.args.embed.clone();
    let mut poll = Duration::from_millis(st.args.config.settings.memory.pipeline_v2.poll_ms);
    if let Some(at) = st.backfill_retry_at {
        poll = poll.min(
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        );
    }
    st.waiter = Some(tokio::spawn(async move {
        tokio::select! {
            _ = wake.notified() => {}
            _ = embed.ready.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        let _ = me.send_message(PipelineMsg::Tick);
    }));
}

async fn job_step(st: &PipelineState, op: JobOp) -> Option<JobReply> {
    match st.args.memories.job(op).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "pipeline job step failed");
            st.args.stats.error(&e);
            None
        }
    }
}

async fn reap(st: &PipelineState) {
    let timeout_secs = st
        .args
        .config
        .settings
        .memory
        .pipeline_v2
        .lease_timeout_seconds as i64;
    let now = st.args.clock.now();
    if let Some(JobReply::Reaped(back)) = job_step(st, JobOp::Reap { timeout_secs, now }).await {
        if !back.is_empty() {
            tracing::warn!(jobs = back.len(), "stale leases taken back");
        }
    }
}

/// One backfill batch; true when vectors were stored.
async fn backfill(st: &mut PipelineState) -> bool {
    let embed = st.args.embed.clone();
    if !embed.is_ready() {
        return false;
    }
    match st.backfill_retry_at {
        Some(t) if Instant::now() < t => return false,
        // The backoff is over: whatever happens next decides anew.
        Some(_) => st.backfill_retry_at = None,
        None => {}
    }
    if st.last_rescan.elapsed() >= RESCAN_EVERY {
        st.cursor = 0;
        st.last_rescan = Instant::now();
    }
    let rows = match st
        .args
        .memories
        .embedding_gaps_after(st.cursor, embed.batch_size())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            st.args.stats.error(&e);
            return false;
        }
    };
    let Some(last) = rows.last().map(|r| r.0) else {
        return false;
    };
    let t = std::time::Instant::now();
    let single = rows.len() == 1;
    let mut res = st
        .args
        .memories
        .embed_and_store(rows.clone(), Lane::Background)
        .await;
    if res.is_err() && !single {
        // One bad input (say, longer than the provider accepts) must not
        // hold back every memory after it: retry one by one and move past
        // the ones that fail alone, unless all fail (the provider is down).
        let mut stored = 0;
        let mut failed = 0u64;
        for row in rows {
            match st
                .args
                .memories
                .embed_and_store(vec![row], Lane::Background)
                .await
            {
                Ok(n) => stored += n,
                Err(_) => failed += 1,
            }
        }
        if stored > 0 {
            if failed > 0 {
                tracing::warn!(
                    failed,
                    "memories the embedding provider refused were skipped"
                );
                st.args
                    .stats
                    .embed_failures
                    .fetch_add(failed, Ordering::Relaxed);
            }
            res = Ok(stored);
        }
    }
    if res.is_err() {
        st.args.embed.trip();
    }
    let stats = &st.args.stats;
    stats
        .embed_ns
        .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    match res {
        Ok(n) => {
            stats.embedded.fetch_add(n as u64, Ordering::Relaxed);
            stats.embed_batches.fetch_add(1, Ordering::Relaxed);
            st.cursor = last;
            st.backfill_failures = 0;
            st.backfill_retry_at = None;
            // Busy: pace the next batch instead of competing for the CPU.
            let ops = st.args.writer.ops.load(Ordering::Relaxed);
            let (before, at) = st.last_batch;
            let rate = ops.saturating_sub(before) as f64 / at.elapsed().as_secs_f64().max(1e-3);
            st.last_batch = (ops, Instant::now());
            if rate > BUSY_WRITES_PER_SEC {
                st.backfill_retry_at = Some(Instant::now() + BUSY_PACE);
                return false;
            }
            true
        }
        Err(e) => {
            stats.embed_failures.fetch_add(1, Ordering::Relaxed);
            stats.error(&e);
            st.backfill_failures += 1;
            let wait =
                Duration::from_secs(1 << st.backfill_failures.min(6)).min(Duration::from_secs(60));
            st.backfill_retry_at = Some(Instant::now() + wait);
            tracing::warn!(error = %e, retry_s = wait.as_secs(), "embedding backfill failed; backing off");
            false
        }
    }
}

/// Summarise one queued session transcript (session-end queues them only
/// when an extraction provider is configured); true when one was taken.
async fn run_summary(st: &PipelineState) -> bool {
    let p = &st.args.config.settings.memory.pipeline_v2;
    let Some(llm) = st.args.llm.clone() else {
        return false;
    };
    if p.mutations_frozen {
        return false;
    }
    let lease = chrono::Duration::seconds(p.lease_timeout_seconds as i64);
    match crate::memory::hooks::summarise_next(
        &st.args.memories,
        &llm,
        st.args.clock.now(),
        lease,
        p.max_attempts,
    )
    .await
    {
        Ok(took) => took,
        Err(e) => {
            tracing::warn!(error = %e, "summary queue step failed");
            st.args.stats.error(&e);
            false
        }
    }
}

/// Lease and run up to [`JOBS_PER_ROUND`] jobs; true when any ran.
async fn run_jobs(st: &mut PipelineState) -> bool {
    let p = &st.args.config.settings.memory.pipeline_v2;
    let mut kinds = Vec::new();
    if st.args.embed.is_ready() && st.backfill_retry_at.is_none_or(|t| Instant::now() >= t) {
        kinds.push("embed");
    }
    if p.enabled && st.args.llm.is_some() && !p.mutations_frozen {
        kinds.push("extract");
    }
    if kinds.is_empty() {
        return false;
    }
    let mut ran = false;
    for _ in 0..JOBS_PER_ROUND {
        let now = st.args.clock.now();
        let Some(JobReply::Leased(Some(job))) = job_step(
            st,
            JobOp::Lease {
                kinds: kinds.clone(),
                now,
            },
        )
        .await
        else {
            break;
        };
        ran = true;
        let outcome = match job.kind.as_str() {
            "embed" => embed_job(st, &job).await.map(|_| None),
            "extract" => extract_job(st, &job).await.map(Some),
            other => Err(format!("unknown job kind '{other}'")),
        };
        let now = st.args.clock.now();
        match outcome {
            Ok(status) => {
                let done = job_step(
                    st,
                    JobOp::Complete {
                        id: job.id.clone(),
                        extraction_status: status,
                        now,
                    },
                )
                .await;
                // Not counted when the lease was taken back meanwhile.
                if matches!(done, Some(JobReply::Completed(true))) {
                    st.args.stats.jobs_completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                st.args.stats.error(&error);
                tracing::warn!(job = %job.id, kind = %job.kind, %error, "pipeline job failed");
                let failed = job_step(
                    st,
                    JobOp::Fail {
                        id: job.id.clone(),
                        error,
                        now,
                    },
                )
                .await;
                if matches!(&failed, Some(JobReply::Failed(Some(j))) if j.attempts > job.attempts) {
                    st.args.stats.jobs_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    ran
}

async fn embed_job(st: &PipelineState, job: &Job) -> Result<(), String> {
    let Some(m) = st
        .args
        .memories
        .record_unscoped(&job.memory_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // gone: nothing to embed
    };
    if m.is_deleted {
        return Ok(());
    }
    st.args
        .memories
        .embed_and_store(vec![(0, m.id, m.content, m.content_hash)], Lane::Background)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn pipeline_caller() -> Caller {
    Caller::daemon("pipeline", "pipeline")
}

/// Extract facts from the job's memory and apply (or, in shadow mode,
/// propose) a decision for each. Returns the memory's extraction status.
async fn extract_job(st: &PipelineState, job: &Job) -> Result<&'static str, String> {
    let Some(llm) = st.args.llm.clone() else {
        return Err("no extraction provider".into());
    };
    let mem = &st.args.memories;
    let Some(source) = mem
        .record_unscoped(&job.memory_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok("skipped");
    };
    if source.is_deleted {
        return Ok("skipped");
    }
    let shadow = st.args.config.settings.memory.pipeline_v2.shadow_mode;
    let (facts, total) = llm
        .facts(&source.content)
        .await
        .map_err(|e| e.to_string())?;
    let mut report = Report {
        facts: facts.len(),
        dropped_low_confidence: total - facts.len(),
        ..Report::default()
    };
    let scope = Scope {
        project: source.project.clone(),
        agent: source.agent.clone(),
        user: source.user.clone(),
    };
    let caller = pipeline_caller();
    for fact in facts {
        let candidates = mem
            .neighbours(&fact.content, &scope, Some(source.id.clone()), 5)
            .await
            .map_err(|e| e.to_string())?;
        let decision = if candidates.is_empty() {
            crate::extract::parse::Decision {
                action: Action::Add,
                target_id: None,
                content: None,
                reason: Some("no similar memory".into()),
            }
        } else {
            llm.decide(&fact, &candidates)
                .await
                .map_err(|e| e.to_string())?
        };
        if shadow {
            let proposal = serde_json::json!({
                "action": decision.action, "targetId": decision.target_id,
                "content": decision.content.clone().unwrap_or_else(|| fact.content.clone()),
                "fact": fact.content, "confidence": fact.confidence, "reason": decision.reason,
                "jobId": job.id,
            });
            mem.job(JobOp::Propose {
                memory_id: source.id.clone(),
                proposal,
                audit: caller.audit(None),
            })
            .await
            .map_err(|e| e.to_string())?;
            report.proposed += 1;
            st.args.stats.proposals.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        apply(st, &caller, &source, &fact, decision, &mut report).await?;
    }
    tracing::debug!(memory = %source.id, ?report, "extraction done");
    Ok(if shadow { "shadow" } else { "completed" })
}

async fn apply(
    st: &PipelineState,
    caller: &Caller,
    source: &crate::store::memories::MemoryRecord,
    fact: &Fact,
    d: crate::extract::parse::Decision,
    report: &mut Report,
) -> Result<(), String> {
    use crate::memory::requests::{Edit, RememberRequest};
    use crate::store::memories::ForgetRequest;
    let mem = &st.args.memories;
    let stats = &st.args.stats;
    let reason = format!(
        "pipeline: {}",
        d.reason.as_deref().unwrap_or("extracted fact")
    );
    match d.action {
        Action::None => report.unchanged += 1,
        Action::Add => {
            let req = RememberRequest {
                content: Some(fact.content.clone()),
                kind: fact.kind.clone(),
                importance: Some(0.7),
                who: Some("pipeline".into()),
                project: source.project.clone(),
                agent: source.agent.clone(),
                user: source.user.clone(),
                source_type: Some("pipeline".into()),
                ..RememberRequest::default()
            };
            match mem.remember(caller, req).await {
                Ok(r) if r.deduped => report.unchanged += 1,
                Ok(_) => {
                    report.added += 1;
                    stats.facts_added.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Action::Update => {
            let item = Edit {
                id: d.target_id.clone().unwrap_or_default(),
                content: d.content.clone(),
                reason: Some(reason),
                ..Edit::default()
            };
            match mem.modify(caller, item).await {
                Ok(_) => {
                    report.updated += 1;
                    stats.facts_updated.fetch_add(1, Ordering::Relaxed);
                }
                // A refusal (deleted meanwhile, duplicate content) is an
                // answer, not a failure of the job.
                Err(crate::memory::MemoryError::Refused(_)) => report.refused += 1,
                Err(e) => return Err(e.to_string()),
            }
        }
        Action::Delete => {
            let req = ForgetRequest {
                id: d.target_id.clone().unwrap_or_default(),
                reason: Some(reason),
                force: false,
                if_version: None,
                scope: Scope::default(),
                autonomous: false,
            };
            match mem.forget(caller, req).await {
                Ok(_) => {
                    report.deleted += 1;
                    stats.facts_deleted.fetch_add(1, Ordering::Relaxed);
                }
                Err(crate::memory::MemoryError::Refused(_)) => report.refused += 1,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::jobs;

    /// The queue rules driven by the pipeline's clock under paused tokio
    /// time: backoff, dead letter, and the reaper.
    #[tokio::test(start_paused = true)]
    async fn backoff_dead_letter_and_reaper_follow_paused_time() {
        let dir = tempfile::tempdir().expect("tmp");
        crate::store::register_vec_extension();
        let mut c = rusqlite::Connection::open(dir.path().join("q.db")).expect("open");
        crate::store::schema::migrate(&mut c).expect("migrate");
        let clock = Clock::start();
        let id = jobs::enqueue(&c, "m1", "extract", 3, clock.now()).expect("enqueue");
        let lease =
            |c: &rusqlite::Connection| jobs::lease(c, &["extract"], clock.now()).expect("lease");

        assert!(lease(&c).is_some());
        jobs::fail(&c, &id, "llm down", clock.now()).expect("fail");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(lease(&c).is_none(), "still backing off after 9 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(lease(&c).is_some(), "eligible after 10 s");

        // The worker dies holding the lease: 5 min later the reaper takes it
        // back as a failed attempt (2 of 3).
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(jobs::reap(&c, 300, clock.now()).expect("reap").is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        let back = jobs::reap(&c, 300, clock.now()).expect("reap");
        assert_eq!((back[0].status.as_str(), back[0].attempts), ("pending", 2));

        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(lease(&c).is_some(), "eligible after the 20 s backoff");
        let dead = jobs::fail(&c, &id, "still down", clock.now())
            .expect("fail")
            .expect("job");
        assert_eq!((dead.status.as_str(), dead.attempts), ("dead", 3));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(lease(&c).is_none(), "a dead job is never leased");
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let c = Clock::start();
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!((c.now() - t0).num_seconds(), 301);
    }
}
