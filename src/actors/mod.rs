//! The supervised actors and the registry handlers find them through.
//!
//! One [`supervisor::Supervisor`] links every child and restarts a failed
//! one with bounded retries and backoff; each (re)start is republished in
//! the [`Registry`], so a handler that holds the registry always reaches
//! the live actor.

pub mod store_writer;
pub mod supervisor;

use std::time::Duration;

use ractor::concurrency::oneshot;
use ractor::{ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::watch;

use store_writer::WriterMsg;

/// Why an actor call gave no answer; the HTTP layer answers 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActorError {
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error("{0} did not answer in time")]
    Timeout(&'static str),
}

/// The current refs of the supervised actors.
#[derive(Clone)]
pub struct Registry {
    writer: watch::Sender<Option<ActorRef<WriterMsg>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            writer: watch::Sender::new(None),
        }
    }
}

impl Registry {
    /// Publish the store writer's (new) ref.
    pub fn publish_writer(&self, r: Option<ActorRef<WriterMsg>>) {
        self.writer.send_replace(r);
    }

    /// The store writer's current ref, if it runs.
    pub fn writer(&self) -> Option<ActorRef<WriterMsg>> {
        self.writer.borrow().clone()
    }

    /// Send a message to the store writer and wait for its reply.
    ///
    /// A message that cannot be delivered (the writer is between a failure
    /// and its restart) never ran, so it is re-sent to the restarted writer
    /// when one appears within `timeout`. A reply that never comes
    /// (timeout, or the writer failed while holding it) is an error.
    pub async fn call_writer<T, F>(&self, timeout: Duration, make: F) -> Result<T, ActorError>
    where
        F: FnOnce(RpcReplyPort<T>) -> WriterMsg,
        T: Send + 'static,
    {
        const NAME: &str = "store writer";
        let deadline = tokio::time::Instant::now() + timeout;
        let (tx, rx) = oneshot();
        let mut msg = make(RpcReplyPort::from(tx));
        let mut sub = self.writer.subscribe();
        loop {
            let current = sub.borrow_and_update().clone();
            if let Some(actor) = current {
                match actor.send_message(msg) {
                    Ok(()) => break,
                    Err(MessagingErr::SendErr(back)) => msg = back,
                    Err(_) => return Err(ActorError::Unavailable(NAME)),
                }
            }
            // Wait for the supervisor to publish a new ref.
            match tokio::time::timeout_at(deadline, sub.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(ActorError::Unavailable(NAME)),
                Err(_) => return Err(ActorError::Timeout(NAME)),
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ActorError::Unavailable(NAME)),
            Err(_) => Err(ActorError::Timeout(NAME)),
        }
    }
}
