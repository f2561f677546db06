//! The supervisor: owns every long-lived actor.
//!
//! It spawns each child linked to itself, republishes its ref in the
//! [`Registry`], and on `ActorFailed` (a panic or an error in a handler)
//! restarts the child after a backoff. More than [`MAX_RESTARTS`] restarts
//! of one child within [`RESTART_WINDOW`] means the fault is not transient:
//! the supervisor gives up and stops, which the app treats as fatal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::store_writer::{StoreWriter, WriterArgs};
use super::Registry;

/// Restarts of one child tolerated within [`RESTART_WINDOW`].
pub const MAX_RESTARTS: usize = 5;
/// The window over which restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Drain and stop every child (clean shutdown); replies when done.
    Shutdown(RpcReplyPort<()>),
}

/// Everything the children need.
#[derive(Clone)]
pub struct SupervisorArgs {
    pub registry: Registry,
    pub writer: WriterArgs,
    /// Total restarts of all children, for metrics.
    pub restarts: Arc<AtomicU64>,
}

/// The supervisor actor.
pub struct Supervisor;

/// Supervisor state.
pub struct SupervisorState {
    args: SupervisorArgs,
    writer: Option<ActorCell>,
    writer_restarts: VecDeque<Instant>,
    stopping: bool,
}

async fn spawn_writer(
    me: &ActorRef<SupervisorMsg>,
    st: &mut SupervisorState,
) -> Result<(), ActorProcessingErr> {
    let (r, _) =
        Actor::spawn_linked(None, StoreWriter, st.args.writer.clone(), me.get_cell()).await?;
    st.writer = Some(r.get_cell());
    st.args.registry.publish_writer(Some(r));
    Ok(())
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
            writer: None,
            writer_restarts: VecDeque::new(),
            stopping: false,
        };
        spawn_writer(&me, &mut st).await?;
        Ok(st)
    }

    async fn handle(
        &self,
        _me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Shutdown(reply) => {
                st.stopping = true;
                if let Some(w) = st.writer.take() {
                    st.args.registry.publish_writer(None);
                    // Drain: every queued write is handled, then post_stop
                    // commits the rest and checkpoints the WAL.
                    if let Err(e) = w.drain_and_wait(Some(Duration::from_secs(30))).await {
                        tracing::error!(error = %e, "store writer did not drain");
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
        let is_writer = st.writer.as_ref().map(|w| w.get_id()) == Some(cell.get_id());
        if !is_writer || st.stopping {
            return Ok(());
        }
        st.args.registry.publish_writer(None);
        st.writer = None;
        let now = Instant::now();
        while st
            .writer_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            st.writer_restarts.pop_front();
        }
        if st.writer_restarts.len() >= MAX_RESTARTS {
            tracing::error!(%reason, "store writer keeps failing; giving up");
            me.stop(Some("store writer restart limit reached".into()));
            return Ok(());
        }
        let attempt = st.writer_restarts.len() as u32;
        st.writer_restarts.push_back(now);
        st.args.restarts.fetch_add(1, Ordering::Relaxed);
        let backoff = Duration::from_millis(50 * 2u64.pow(attempt)).min(Duration::from_secs(2));
        tracing::warn!(%reason, attempt, backoff_ms = backoff.as_millis() as u64, "restarting store writer");
        tokio::time::sleep(backoff).await;
        if let Err(e) = spawn_writer(&me, st).await {
            tracing::error!(error = %e, "store writer failed to restart");
            me.stop(Some("store writer failed to restart".into()));
        }
        Ok(())
    }
}
