//! The supervisor: owns every long-lived actor.
//!
//! It spawns each child linked to itself, republishes its ref in the
//! [`Registry`], and on `ActorFailed` (a panic or an error in a handler)
//! restarts the child after a backoff. More than [`MAX_RESTARTS`] restarts
//! of one child within [`RESTART_WINDOW`] means the fault is not transient:
//! the supervisor gives up and stops, which the app treats as fatal.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::rate_limit::{LedgerArgs, RateLimiter};
use super::retention::{Sweeper, SweeperArgs};
use super::sse::{Broadcaster, SseArgs};
use super::store_writer::{
    JobOp, JobReply, StoreWriter, WriteOp, WriterArgs, WriterInbox, WriterMsg,
};
use super::{Registry, WriterRef};

/// Restarts of one child tolerated within [`RESTART_WINDOW`].
pub const MAX_RESTARTS: usize = 5;
/// The window over which restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Drain and stop every child (clean shutdown); replies when done.
    Shutdown(RpcReplyPort<()>),
    /// Start the extraction pipeline (it needs the memory operations, which
    /// are built once the writer runs). The supervisor only holds the
    /// function that spawns it: the pipeline lives above the domain layer.
    StartPipeline(Spawner, RpcReplyPort<()>),
}

/// Spawns a child built above this layer, linked to the given supervisor
/// cell; called again on every restart.
pub type Spawner = Arc<
    dyn Fn(
            ActorCell,
        )
            -> futures_util::future::BoxFuture<'static, Result<ActorCell, ActorProcessingErr>>
        + Send
        + Sync,
>;

/// The supervised children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    StoreWriter,
    RateLimiter,
    Broadcaster,
    Sweeper,
    Pipeline,
}

impl Child {
    fn name(self) -> &'static str {
        match self {
            Child::StoreWriter => "store writer",
            Child::RateLimiter => "rate-limit ledger",
            Child::Broadcaster => "SSE broadcaster",
            Child::Sweeper => "retention sweeper",
            Child::Pipeline => "extraction pipeline",
        }
    }
}

/// Everything the children need.
#[derive(Clone)]
pub struct SupervisorArgs {
    pub registry: Registry,
    pub writer: WriterArgs,
    pub ledger: LedgerArgs,
    pub sse: SseArgs,
    pub sweeper: SweeperArgs,
    /// Total restarts of all children, for metrics.
    pub restarts: Arc<AtomicU64>,
}

/// Hand the killed pipeline's leases back through the (still running)
/// writer.
async fn release_leases(args: &SupervisorArgs) {
    let now = args.writer.clock.now();
    let out = args
        .registry
        .call_writer(Duration::from_secs(5), |reply| {
            WriterMsg::Write(WriteOp::Job {
                op: JobOp::Release { now },
                reply,
            })
        })
        .await;
    match out {
        Ok(Ok(JobReply::Released(n))) if n > 0 => {
            tracing::info!(jobs = n, "leased jobs released at stop")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "leases not released at stop"),
        Err(e) => tracing::warn!(error = %e, "leases not released at stop"),
    }
}

/// The supervisor actor.
pub struct Supervisor;

/// Supervisor state.
pub struct SupervisorState {
    args: SupervisorArgs,
    running: HashMap<ActorId, (Child, ActorCell)>,
    restarts: HashMap<Child, VecDeque<Instant>>,
    stopping: bool,
    pipeline: Option<Spawner>,
}

async fn spawn_child(
    me: &ActorRef<SupervisorMsg>,
    st: &mut SupervisorState,
    child: Child,
) -> Result<(), ActorProcessingErr> {
    let cell = match child {
        Child::StoreWriter => {
            // A fresh inbox per writer: one a failed writer closed stays
            // closed, so its callers wait for this one.
            let inbox = WriterInbox::default();
            let args = WriterArgs {
                inbox: inbox.clone(),
                ..st.args.writer.clone()
            };
            let (r, _) = Actor::spawn_linked(None, StoreWriter, args, me.get_cell()).await?;
            st.args.registry.publish_writer(Some(WriterRef {
                actor: r.clone(),
                inbox,
            }));
            r.get_cell()
        }
        Child::RateLimiter => {
            let (r, _) =
                Actor::spawn_linked(None, RateLimiter, st.args.ledger.clone(), me.get_cell())
                    .await?;
            st.args.registry.publish_ledger(Some(r.clone()));
            r.get_cell()
        }
        Child::Broadcaster => {
            let (r, _) =
                Actor::spawn_linked(None, Broadcaster, st.args.sse.clone(), me.get_cell()).await?;
            st.args.registry.publish_sse(Some(r.clone()));
            r.get_cell()
        }
        Child::Sweeper => {
            let (r, _) =
                Actor::spawn_linked(None, Sweeper, st.args.sweeper.clone(), me.get_cell()).await?;
            st.args.registry.publish_sweeper(Some(r.clone()));
            r.get_cell()
        }
        Child::Pipeline => {
            let spawn = st
                .pipeline
                .clone()
                .ok_or("the pipeline has no spawner yet")?;
            spawn(me.get_cell()).await?
        }
    };
    st.running.insert(cell.get_id(), (child, cell));
    Ok(())
}

fn unpublish(reg: &Registry, child: Child) {
    match child {
        Child::StoreWriter => reg.publish_writer(None),
        Child::RateLimiter => reg.publish_ledger(None),
        Child::Broadcaster => reg.publish_sse(None),
        Child::Sweeper => reg.publish_sweeper(None),
        Child::Pipeline => {}
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        me: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut st = SupervisorState {
            args,
            running: HashMap::new(),
            restarts: HashMap::new(),
            stopping: false,
            pipeline: None,
        };
        // The broadcaster first: the writer publishes into it.
        spawn_child(&me, &mut st, Child::Broadcaster).await?;
        spawn_child(&me, &mut st, Child::StoreWriter).await?;
        spawn_child(&me, &mut st, Child::RateLimiter).await?;
        spawn_child(&me, &mut st, Child::Sweeper).await?;
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartPipeline(spawn, reply) => {
                if st.pipeline.is_none() && !st.stopping {
                    st.pipeline = Some(spawn);
                    spawn_child(&me, st, Child::Pipeline).await?;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::Shutdown(reply) => {
                st.stopping = true;
                // The writer first: it still publishes into the others.
                let mut children: Vec<(Child, ActorCell)> =
                    st.running.drain().map(|(_, c)| c).collect();
                // The pipeline first (it writes through the writer), then
                // the writer (it publishes into the others).
                children.sort_by_key(|(c, _)| match c {
                    Child::Pipeline => 0,
                    Child::StoreWriter => 1,
                    _ => 2,
                });
                for (child, cell) in children {
                    unpublish(&st.args.registry, child);
                    // Drain: every queued message is handled first; the
                    // writer's post_stop then commits the rest and
                    // checkpoints the WAL.
                    // The pipeline is killed, not drained: its round may
                    // wait on an LLM for a minute. The jobs it had leased
                    // go back to pending with their attempts unchanged (an
                    // interrupted job has not failed); after a crash the
                    // reaper takes them back instead, counting an attempt.
                    let stopped = if child == Child::Pipeline {
                        cell.kill_and_wait(Some(Duration::from_secs(5))).await
                    } else {
                        cell.drain_and_wait(Some(Duration::from_secs(30))).await
                    };
                    if let Err(e) = stopped {
                        tracing::error!(error = %e, child = child.name(), "child did not stop");
                    }
                    if child == Child::Pipeline {
                        release_leases(&st.args).await;
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        if st.stopping {
            return Ok(());
        }
        let Some((child, _)) = st.running.remove(&cell.get_id()) else {
            return Ok(());
        };
        unpublish(&st.args.registry, child);
        let now = Instant::now();
        let history = st.restarts.entry(child).or_default();
        while history
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            history.pop_front();
        }
        if history.len() >= MAX_RESTARTS {
            tracing::error!(%reason, child = child.name(), "child keeps failing; giving up");
            me.stop(Some(format!("{} restart limit reached", child.name())));
            return Ok(());
        }
        let attempt = history.len() as u32;
        history.push_back(now);
        st.args.restarts.fetch_add(1, Ordering::Relaxed);
        let backoff = Duration::from_millis(50 * 2u64.pow(attempt)).min(Duration::from_secs(2));
        tracing::warn!(%reason, child = child.name(), attempt, backoff_ms = backoff.as_millis() as u64, "restarting");
        tokio::time::sleep(backoff).await;
        if let Err(e) = spawn_child(&me, st, child).await {
            tracing::error!(error = %e, child = child.name(), "restart failed");
            me.stop(Some(format!("{} failed to restart", child.name())));
        }
        Ok(())
    }
}
