//! The retention sweeper: at start and then on a timer (6 h by default) it
//! archives and removes tombstones past the recover window and purges old
//! history and finished jobs. Every batch goes through the store writer as
//! its own transaction, so a sweep never holds the write lock for long.
//! `POST /api/repair/retention-sweep` asks it to run now.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::store_writer::{WriteOp, WriterMsg};
use super::Registry;
use crate::config::RetentionSettings;
use crate::store::maintenance::{cutoff, SweepStep};

/// Rows removed by one sweep.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub tombstones: usize,
    pub history: usize,
    pub completed_jobs: usize,
    pub dead_jobs: usize,
    /// Pages given back to the file system after the purge.
    pub vacuumed_pages: i64,
    /// The longest vacuum step, as the writer's other callers waited for
    /// it (milliseconds, queueing included).
    pub vacuum_max_step_ms: u64,
}

/// Pages freed per writer call: each call is its own short transaction, so
/// writes wait behind at most one step (benches/README.md).
const VACUUM_STEP_PAGES: i64 = 1024;

/// Messages to the sweeper.
pub enum SweeperMsg {
    /// Sweep now; the timer sends it without a reply port.
    Run(Option<RpcReplyPort<Result<SweepReport, String>>>),
}

/// Startup arguments.
#[derive(Clone)]
pub struct SweeperArgs {
    pub registry: Registry,
    pub settings: RetentionSettings,
    pub writer_timeout: Duration,
    /// The kill switch: while set, the timer does not sweep.
    pub frozen: bool,
    /// Where the cutoffs are measured from.
    pub clock: crate::clock::Clock,
}

/// The actor.
pub struct Sweeper;

/// Run every step until each is exhausted.
pub async fn sweep(args: &SweeperArgs, now: i64) -> Result<SweepReport, String> {
    let s = &args.settings;
    let mut report = SweepReport::default();
    for (step, days) in [
        (SweepStep::Tombstones, s.tombstone_days),
        (SweepStep::History, s.history_days),
        (SweepStep::CompletedJobs, s.completed_job_days),
        (SweepStep::DeadJobs, s.dead_job_days),
    ] {
        let cut = cutoff(now, days);
        loop {
            let n = args
                .registry
                .call_writer(args.writer_timeout, |reply| {
                    WriterMsg::Write(WriteOp::Sweep {
                        step,
                        cutoff: cut.clone(),
                        batch: s.batch_size.max(1),
                        reply,
                    })
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            match step {
                SweepStep::Tombstones => report.tombstones += n,
                SweepStep::History => report.history += n,
                SweepStep::CompletedJobs => report.completed_jobs += n,
                SweepStep::DeadJobs => report.dead_jobs += n,
            }
            if (n as i64) < s.batch_size.max(1) {
                break;
            }
        }
    }
    // Give the freed pages back in steps (incremental auto-vacuum); a
    // database without it frees nothing and the loop ends at once.
    loop {
        let t0 = std::time::Instant::now();
        let (freed, left) = args
            .registry
            .call_writer(args.writer_timeout, |reply| {
                WriterMsg::Write(WriteOp::Vacuum {
                    pages: VACUUM_STEP_PAGES,
                    reply,
                })
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        report.vacuumed_pages += freed;
        report.vacuum_max_step_ms = report
            .vacuum_max_step_ms
            .max(t0.elapsed().as_millis() as u64);
        if freed == 0 || left == 0 {
            break;
        }
    }
    Ok(report)
}

impl Actor for Sweeper {
    type Msg = SweeperMsg;
    type State = SweeperArgs;
    type Arguments = SweeperArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<SweeperMsg>,
        args: SweeperArgs,
    ) -> Result<SweeperArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn post_start(
        &self,
        me: ActorRef<SweeperMsg>,
        args: &mut SweeperArgs,
    ) -> Result<(), ActorProcessingErr> {
        me.send_message(SweeperMsg::Run(None))?;
        me.send_interval(
            Duration::from_secs(args.settings.interval_seconds.max(1)),
            || SweeperMsg::Run(None),
        );
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<SweeperMsg>,
        msg: SweeperMsg,
        args: &mut SweeperArgs,
    ) -> Result<(), ActorProcessingErr> {
        let SweeperMsg::Run(reply) = msg;
        if args.frozen {
            tracing::debug!("retention sweep skipped: mutations are frozen");
            if let Some(reply) = reply {
                let _ = reply.send(Err(
                    "retention sweeps are paused: mutations are frozen".into()
                ));
            }
            return Ok(());
        }
        let out = sweep(args, args.clock.now().timestamp()).await;
        match &out {
            Ok(r) => tracing::info!(
                tombstones = r.tombstones,
                history = r.history,
                completed_jobs = r.completed_jobs,
                dead_jobs = r.dead_jobs,
                vacuumed_pages = r.vacuumed_pages,
                vacuum_max_step_ms = r.vacuum_max_step_ms,
                "retention sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
        if let Some(reply) = reply {
            let _ = reply.send(out);
        }
        Ok(())
    }
}
