//! The SSE broadcaster: numbers committed events, keeps the last
//! `ring_size` of them for `Last-Event-ID` resumes, and fans them out to
//! subscribers through a bounded broadcast channel.
//!
//! The store writer sends `Publish` after a commit with `send_message`,
//! which never waits: a slow consumer can only fall behind its own bounded
//! channel and is then dropped by its stream (it reconnects with
//! `Last-Event-ID`), so no consumer can stall writers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::broadcast;

/// One event as subscribers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Monotonic within a daemon run.
    pub id: u64,
    /// `memory.created`, `memory.updated`, ...
    pub kind: &'static str,
    /// Scope fields of the record the event is about (for filtering).
    #[serde(skip)]
    pub project: Option<String>,
    #[serde(skip)]
    pub agent: Option<String>,
    #[serde(skip)]
    pub user: Option<String>,
    /// The JSON body of the `data:` line.
    pub data: serde_json::Value,
    /// `data` rendered once, shared by every subscriber.
    #[serde(skip)]
    pub wire: String,
}

/// The events of one commit, delivered to subscribers as one message so a
/// large batch never overflows a client's buffer by itself.
#[derive(Debug)]
pub struct CommitEvents {
    pub events: Vec<Arc<Event>>,
    /// The whole batch in SSE wire format, rendered once for every
    /// subscriber that takes all of it.
    pub wire: String,
}

/// A shared [`CommitEvents`].
pub type Batch = Arc<CommitEvents>;

/// One event in SSE wire format (`event:`, `data:`, `id:`, blank line).
pub fn frame(e: &Event) -> String {
    format!("event:{}\ndata:{}\nid:{}\n\n", e.kind, e.wire, e.id)
}

/// An event before the broadcaster numbers it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: &'static str,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    pub data: serde_json::Value,
}

/// What a new subscriber gets: the missed events, then the live feed.
pub struct Subscription {
    pub replay: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Batch>,
}

/// Messages to the broadcaster.
pub enum SseMsg {
    /// Number, remember and fan out committed events (from the writer).
    Publish(Vec<Draft>),
    /// Subscribe, replaying what followed `after` (if still in the ring).
    Subscribe {
        after: Option<u64>,
        reply: RpcReplyPort<Subscription>,
    },
}

/// Startup arguments.
#[derive(Clone)]
pub struct SseArgs {
    pub ring_size: usize,
    /// Per-subscriber buffer before a slow consumer is dropped.
    pub channel_size: usize,
    /// Events published so far (shared with metrics).
    pub published: Arc<AtomicU64>,
}

/// The actor.
pub struct Broadcaster;

/// Broadcaster state.
pub struct SseState {
    ring: VecDeque<Arc<Event>>,
    next_id: u64,
    tx: broadcast::Sender<Batch>,
    args: SseArgs,
}

impl Actor for Broadcaster {
    type Msg = SseMsg;
    type State = SseState;
    type Arguments = SseArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<SseMsg>,
        args: SseArgs,
    ) -> Result<SseState, ActorProcessingErr> {
        let (tx, _) = broadcast::channel(args.channel_size.max(1));
        // Ids continue across a restart of this actor within one process.
        let next_id = args.published.load(Ordering::Relaxed) + 1;
        Ok(SseState {
            ring: VecDeque::with_capacity(args.ring_size),
            next_id,
            tx,
            args,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<SseMsg>,
        msg: SseMsg,
        st: &mut SseState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SseMsg::Publish(drafts) => {
                let mut batch = Vec::with_capacity(drafts.len());
                for d in drafts {
                    let ev = Arc::new(Event {
                        id: st.next_id,
                        kind: d.kind,
                        project: d.project,
                        agent: d.agent,
                        user: d.user,
                        wire: d.data.to_string(),
                        data: d.data,
                    });
                    st.next_id += 1;
                    st.args.published.fetch_add(1, Ordering::Relaxed);
                    if st.ring.len() == st.args.ring_size {
                        st.ring.pop_front();
                    }
                    st.ring.push_back(ev.clone());
                    batch.push(ev);
                }
                let wire: String = batch.iter().map(|e| frame(e)).collect();
                // No receivers is fine.
                let _ = st.tx.send(Arc::new(CommitEvents {
                    events: batch,
                    wire,
                }));
            }
            SseMsg::Subscribe { after, reply } => {
                let replay = match after {
                    Some(a) => st.ring.iter().filter(|e| e.id > a).cloned().collect(),
                    None => Vec::new(),
                };
                let _ = reply.send(Subscription {
                    replay,
                    live: st.tx.subscribe(),
                });
            }
        }
        Ok(())
    }
}
