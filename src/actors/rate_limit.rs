//! The rate-limit ledger actor: owns a [`RateLedger`] and answers every
//! check in turn, so N parallel requests against a limit of M succeed
//! exactly M times. A timer evicts idle windows so memory stays bounded
//! however many actors come and go. Sent to by the HTTP edge.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::auth::ledger::{Decision, RateLedger, RateOp};
use crate::config::RateLimits;

/// Messages to the rate-limit ledger.
pub enum LedgerMsg {
    /// Count one hit of each op by `actor`; replies whether it may proceed.
    Check {
        actor: String,
        ops: Vec<RateOp>,
        reply: RpcReplyPort<Decision>,
    },
    /// Drop windows idle longer than their period; sent by a timer.
    Evict,
}

/// Startup arguments.
#[derive(Clone)]
pub struct LedgerArgs {
    pub limits: RateLimits,
    pub evict_every: Duration,
}

/// The actor.
pub struct RateLimiter;

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl Actor for RateLimiter {
    type Msg = LedgerMsg;
    type State = RateLedger;
    type Arguments = LedgerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<LedgerMsg>,
        args: LedgerArgs,
    ) -> Result<RateLedger, ActorProcessingErr> {
        me.send_interval(args.evict_every, || LedgerMsg::Evict);
        Ok(RateLedger::new(args.limits))
    }

    async fn handle(
        &self,
        _me: ActorRef<LedgerMsg>,
        msg: LedgerMsg,
        ledger: &mut RateLedger,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LedgerMsg::Check { actor, ops, reply } => {
                let _ = reply.send(ledger.check(&actor, &ops, now_ms()));
            }
            LedgerMsg::Evict => {
                let n = ledger.evict(now_ms());
                if n > 0 {
                    tracing::debug!(
                        evicted = n,
                        held = ledger.len(),
                        "rate-limit windows evicted"
                    );
                }
            }
        }
        Ok(())
    }
}
