//! The supervised actors and the registry handlers find them through.
//!
//! One [`supervisor::Supervisor`] links every child and restarts a failed
//! one with bounded retries and backoff; each (re)start is republished in
//! the [`Registry`], so a handler that holds the registry always reaches
//! the live actor.

pub mod rate_limit;
pub mod retention;
pub mod sse;
pub mod store_writer;
pub mod supervisor;

use std::time::Duration;

use ractor::concurrency::oneshot;
use ractor::{ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::watch;

use rate_limit::LedgerMsg;
use retention::{SweepReport, SweeperMsg};
use sse::{Draft, SseMsg, Subscription};
use store_writer::{WriterInbox, WriterMsg};

/// Why an actor call gave no answer; the HTTP layer answers 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActorError {
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error("{0} did not answer in time")]
    Timeout(&'static str),
}

/// The store writer as callers reach it: the actor, and the inbox its
/// thread takes callers' writes from.
#[derive(Clone)]
pub struct WriterRef {
    pub actor: ActorRef<WriterMsg>,
    pub inbox: WriterInbox,
}

impl WriterRef {
    /// A write goes to the inbox, anything else to the actor; what could
    /// not be delivered (the writer stopped) comes back, `Err(None)` when
    /// the actor cannot take messages at all.
    fn deliver(&self, msg: WriterMsg) -> Result<(), Option<Box<WriterMsg>>> {
        match msg {
            WriterMsg::Write(op) => self
                .inbox
                .send(op)
                .map_err(|op| Some(Box::new(WriterMsg::Write(*op)))),
            msg => match self.actor.send_message(msg) {
                Ok(()) => Ok(()),
                Err(MessagingErr::SendErr(back)) => Err(Some(Box::new(back))),
                Err(_) => Err(None),
            },
        }
    }
}

/// The current refs of the supervised actors.
#[derive(Clone)]
pub struct Registry {
    writer: watch::Sender<Option<WriterRef>>,
    ledger: watch::Sender<Option<ActorRef<LedgerMsg>>>,
    sse: watch::Sender<Option<ActorRef<SseMsg>>>,
    sweeper: watch::Sender<Option<ActorRef<SweeperMsg>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            writer: watch::Sender::new(None),
            ledger: watch::Sender::new(None),
            sse: watch::Sender::new(None),
            sweeper: watch::Sender::new(None),
        }
    }
}

impl Registry {
    /// Publish the retention sweeper's (new) ref.
    pub fn publish_sweeper(&self, r: Option<ActorRef<SweeperMsg>>) {
        self.sweeper.send_replace(r);
    }

    /// Ask the sweeper to run now and wait for its report.
    pub async fn sweep_now(
        &self,
        timeout: Duration,
    ) -> Result<Result<SweepReport, String>, ActorError> {
        ask(&self.sweeper, "retention sweeper", timeout, |reply| {
            SweeperMsg::Run(Some(reply))
        })
        .await
    }

    /// Publish the SSE broadcaster's (new) ref.
    pub fn publish_sse(&self, r: Option<ActorRef<SseMsg>>) {
        self.sse.send_replace(r);
    }

    /// Hand committed events to the broadcaster without waiting; with no
    /// broadcaster running they are dropped (and logged).
    pub fn publish_events(&self, drafts: Vec<Draft>) {
        let target = self.sse.borrow().clone();
        match target {
            Some(b) => {
                if b.send_message(SseMsg::Publish(drafts)).is_err() {
                    tracing::warn!("SSE broadcaster gone; events dropped");
                }
            }
            None => tracing::debug!(n = drafts.len(), "no SSE broadcaster; events dropped"),
        }
    }

    /// Subscribe to events after `after`.
    pub async fn subscribe(
        &self,
        after: Option<u64>,
        timeout: Duration,
    ) -> Result<Subscription, ActorError> {
        ask(&self.sse, "SSE broadcaster", timeout, |reply| {
            SseMsg::Subscribe { after, reply }
        })
        .await
    }

    /// Publish the rate-limit ledger's (new) ref.
    pub fn publish_ledger(&self, r: Option<ActorRef<LedgerMsg>>) {
        self.ledger.send_replace(r);
    }

    /// Ask the rate-limit ledger; it keeps no state worth retrying for, so
    /// an absent or silent ledger is simply unavailable (503).
    pub async fn call_ledger<T, F>(&self, timeout: Duration, make: F) -> Result<T, ActorError>
    where
        F: FnOnce(RpcReplyPort<T>) -> LedgerMsg,
        T: Send + 'static,
    {
        ask(&self.ledger, "rate-limit ledger", timeout, make).await
    }

    /// Publish the store writer's (new) ref and inbox.
    pub fn publish_writer(&self, r: Option<WriterRef>) {
        self.writer.send_replace(r);
    }

    /// The store writer's current ref, if it runs.
    pub fn writer(&self) -> Option<ActorRef<WriterMsg>> {
        self.writer.borrow().as_ref().map(|w| w.actor.clone())
    }

    /// Send a message to the store writer and wait for its reply.
    ///
    /// `make` builds the message around a reply port; it may be called more
    /// than once. A message that cannot be delivered (the writer is between
    /// a failure and its restart) never ran, and neither did one whose reply
    /// port was dropped unanswered: the writer replies only after a commit,
    /// so a dropped port means the batch rolled back. Both are re-sent to
    /// the restarted writer when one appears within `timeout`.
    pub async fn call_writer<T, F>(&self, timeout: Duration, make: F) -> Result<T, ActorError>
    where
        F: Fn(RpcReplyPort<T>) -> WriterMsg,
        T: Send + 'static,
    {
        const NAME: &str = "store writer";
        const ATTEMPTS: usize = 3;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut sub = self.writer.subscribe();
        let mut failed: Option<ractor::ActorId> = None;
        for _ in 0..ATTEMPTS {
            let (tx, rx) = oneshot();
            let mut msg = make(RpcReplyPort::from(tx));
            let delivered_to = loop {
                let current = sub.borrow_and_update().clone();
                if let Some(w) = current.filter(|w| Some(w.actor.get_id()) != failed) {
                    match w.deliver(msg) {
                        Ok(()) => break w.actor.get_id(),
                        Err(Some(back)) => msg = *back,
                        Err(None) => return Err(ActorError::Unavailable(NAME)),
                    }
                }
                // Wait for the supervisor to publish a new ref.
                match tokio::time::timeout_at(deadline, sub.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Err(ActorError::Unavailable(NAME)),
                    Err(_) => return Err(ActorError::Timeout(NAME)),
                }
            };
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(_)) => failed = Some(delivered_to),
                Err(_) => return Err(ActorError::Timeout(NAME)),
            }
        }
        Err(ActorError::Unavailable(NAME))
    }
}

/// One request to the actor currently published in `slot`, bounded by
/// `timeout`; an absent, dead or silent actor is an [`ActorError`].
async fn ask<M, T, F>(
    slot: &watch::Sender<Option<ActorRef<M>>>,
    name: &'static str,
    timeout: Duration,
    make: F,
) -> Result<T, ActorError>
where
    M: ractor::Message,
    F: FnOnce(RpcReplyPort<T>) -> M,
    T: Send + 'static,
{
    let actor = slot.borrow().clone().ok_or(ActorError::Unavailable(name))?;
    let (tx, rx) = oneshot();
    actor
        .send_message(make(RpcReplyPort::from(tx)))
        .map_err(|_| ActorError::Unavailable(name))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(ActorError::Unavailable(name)),
        Err(_) => Err(ActorError::Timeout(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_with_no_writer_times_out_instead_of_hanging() {
        let reg = Registry::default();
        let started = std::time::Instant::now();
        let out = reg
            .call_writer::<(), _>(Duration::from_millis(50), |reply| {
                WriterMsg::Checkpoint(reply_into(reply))
            })
            .await;
        assert!(matches!(out, Err(ActorError::Timeout(_))), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    fn reply_into(_: RpcReplyPort<()>) -> RpcReplyPort<Result<(), crate::store::StoreError>> {
        let (tx, _rx) = oneshot();
        RpcReplyPort::from(tx)
    }
}
