//! The operations every front calls: remember, get, list, history, modify,
//! forget, recover, batch forget, batch modify and recall.
//!
//! They take a verified [`Caller`] and typed requests, enforce scope and the
//! kill switch, send writes to the store writer and run reads on the read
//! pool. The HTTP layer only parses, calls one of these and renders.

pub mod cache;
pub mod hooks;
pub mod ops;
pub mod repair;
pub mod requests;
pub mod tokens;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::actors::rate_limit::LedgerMsg;
use crate::actors::store_writer::{JobOp, JobReply, WriteOp, WriterMsg};
use crate::actors::{ActorError, Registry};
use crate::auth::ledger::{Decision, RateOp};
use crate::auth::Permission;
use crate::config::{AuthMode, Config};
use crate::embed::{EmbedError, EmbedService, Lane};
use crate::store::access::AccessTracker;
use crate::store::fts;
use crate::store::memories::{
    self, Audit, BatchSelector, Candidate, ForgetRequest, HistoryEntry, ListStats, MemoryRecord,
    ModifyRequest, MutationOutcome, MutationStatus, NewMemory, RecoverRequest, Scope,
};
use crate::store::search::{self, RecallFilter, Scored};
use crate::store::vec::{NewVector, VectorIndex};
use crate::store::{ReadPool, StoreError};

pub use requests::{BatchForgetRequest, Edit, FeedbackRequest, RecallRequest, RememberRequest};

/// Message of every write refused by the kill switch.
pub const FROZEN: &str = "Mutations are frozen (kill switch active)";

/// The actor name of a caller nobody named.
pub const ANONYMOUS: &str = "anonymous";

/// Batch forget needs the confirm token above this many candidates.
pub const CONFIRM_THRESHOLD: usize = 25;

/// Who is calling, as established (and verified) at the edge.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The acting identity: a verified `sub`, else `x-signet-actor`, else
    /// `anonymous`.
    pub actor: String,
    /// Whether `actor` comes from a verified token.
    pub verified: bool,
    pub actor_type: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    /// The records this caller may touch.
    pub scope: Scope,
    /// The verified token's claims, if a token vouched for the caller.
    pub claims: Option<crate::auth::Claims>,
    /// The role the request was admitted with (`None` for the daemon's own
    /// callers, such as the pipeline).
    pub role: Option<crate::auth::Role>,
}

/// What a caller asks to do: the permission it needs and the operations
/// it counts as in the rate-limit ledger. Every operation of the domain
/// layer admits its caller with one of these, whichever front it came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Remember,
    Recall,
    Modify,
    /// A soft delete; `force` also counts against the force-delete limit.
    Forget {
        force: bool,
    },
    BatchForget,
    Recover,
    /// Rate memories recall handed out.
    Feedback,
    /// Read diagnostics, status details, metrics.
    Diagnose,
    /// Read analytics.
    Analyse,
    /// Repair actions and reports; autonomous callers are throttled.
    Repair,
    /// Mint and revoke tokens.
    ManageTokens,
    /// Bulk import (one request, however many lines).
    Import,
}

impl Operation {
    /// The permission the caller's role must grant.
    pub fn permission(self) -> Permission {
        match self {
            Operation::Remember | Operation::Feedback => Permission::Remember,
            Operation::Recall => Permission::Recall,
            Operation::Modify => Permission::Modify,
            Operation::Forget { .. } | Operation::BatchForget => Permission::Forget,
            Operation::Recover => Permission::Recover,
            Operation::Diagnose => Permission::Diagnostics,
            Operation::Analyse => Permission::Analytics,
            Operation::Repair | Operation::ManageTokens | Operation::Import => Permission::Admin,
        }
    }

    /// The ledger operations one call counts as.
    pub fn rate_ops(self, caller: &Caller) -> &'static [RateOp] {
        match self {
            Operation::Modify => &[RateOp::Modify],
            Operation::Forget { force: false } => &[RateOp::Forget],
            Operation::Forget { force: true } => &[RateOp::Forget, RateOp::ForceDelete],
            Operation::BatchForget => &[RateOp::BatchForget],
            Operation::ManageTokens | Operation::Import => &[RateOp::Admin],
            // Operators repairing by hand are not throttled; agents are.
            Operation::Repair if caller.is_autonomous() => &[RateOp::Admin],
            _ => &[],
        }
    }
}

impl Caller {
    /// The daemon's own caller for background work (the pipeline): no
    /// role (every permission), no scope, never rate-limited.
    pub fn daemon(actor: &str, actor_type: &str) -> Caller {
        Caller {
            actor: actor.to_string(),
            verified: true,
            actor_type: Some(actor_type.to_string()),
            ..Caller::default()
        }
    }

    /// An agent or the pipeline acting on its own: such callers may not
    /// force-delete pinned memories and are throttled on repairs.
    pub fn is_autonomous(&self) -> bool {
        matches!(self.actor_type.as_deref(), Some("agent") | Some("pipeline"))
    }

    /// Whether the caller's role grants `perm` (403 else). The daemon's
    /// own callers (no role) may do everything.
    pub fn permit(&self, perm: Permission) -> Result<(), MemoryError> {
        match self.role {
            Some(role) if !role.allows(perm) => Err(MemoryError::Forbidden(format!(
                "role '{}' lacks '{}' permission",
                role.as_str(),
                perm.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// Daemon-wide operations data (logs) cannot be filtered by scope:
    /// only an unscoped caller may read it.
    pub fn require_unscoped(&self, what: &str) -> Result<(), MemoryError> {
        if self.scope.is_unscoped() {
            Ok(())
        } else {
            Err(MemoryError::Forbidden(format!(
                "{what} spans every scope; a token without a scope is needed"
            )))
        }
    }

    /// The audit trail entry for a mutation; a body-supplied name is only
    /// believed when no token vouches for the caller.
    pub fn audit(&self, claimed: Option<&str>) -> Audit {
        let changed_by = match (self.verified, claimed) {
            (false, Some(c)) if !c.trim().is_empty() => c.trim().to_string(),
            _ => self.actor.clone(),
        };
        Audit {
            changed_by,
            actor_type: self.actor_type.clone(),
            session_id: self.session_id.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

/// Errors of the operations; the HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not found")]
    NotFound,
    /// No such action, report or view (404 with this message).
    #[error("{0}")]
    NoSuch(String),
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the state of the daemon (409), such as
    /// a session claimed by another runtime path.
    #[error("{0}")]
    Conflict(String),
    #[error("{FROZEN}")]
    Frozen,
    /// The rate-limit ledger refused; retry after this Unix millisecond.
    #[error("rate limit exceeded")]
    RateLimited { retry_after_ms: u64 },
    /// A part of the daemon the operation needs is not available.
    #[error("{0}")]
    Unavailable(String),
    /// A single-record mutation that was refused (404/409/403 by status).
    #[error("{}", mutation_message(.0.status))]
    Refused(Box<MutationOutcome>),
    #[error(transparent)]
    Actor(#[from] ActorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MemoryError {
    /// The error as every front reports it: an HTTP status (the class: 400,
    /// 403, 404, 409, 429, 503, …) and the JSON body `{"error": …}` (a
    /// refused mutation adds its id, status and current version).
    pub fn status_and_body(&self) -> (u16, serde_json::Value) {
        use serde_json::json;
        let msg = |status: u16, m: &str| (status, json!({ "error": m }));
        match self {
            MemoryError::BadRequest(m) => msg(400, m),
            MemoryError::TooLarge(m) => msg(413, m),
            MemoryError::NotFound => msg(404, "not found"),
            MemoryError::NoSuch(m) => msg(404, m),
            MemoryError::Forbidden(m) => msg(403, m),
            MemoryError::Conflict(m) => msg(409, m),
            MemoryError::Frozen => msg(503, FROZEN),
            MemoryError::RateLimited { retry_after_ms } => (
                429,
                json!({ "error": "rate limit exceeded", "retryAfter": retry_after_ms }),
            ),
            MemoryError::Unavailable(m) => msg(503, m),
            MemoryError::Refused(o) => {
                let status = match o.status {
                    MutationStatus::NotFound => 404,
                    MutationStatus::AutonomousForceDenied | MutationStatus::OutOfScope => 403,
                    MutationStatus::InvalidRequest => 400,
                    MutationStatus::IsDeleted
                    | MutationStatus::AlreadyDeleted
                    | MutationStatus::NotDeleted
                    | MutationStatus::VersionConflict
                    | MutationStatus::DuplicateContentHash
                    | MutationStatus::PinnedRequiresForce
                    | MutationStatus::RetentionExpired => 409,
                    MutationStatus::Updated
                    | MutationStatus::NoChanges
                    | MutationStatus::Deleted
                    | MutationStatus::Recovered => 200,
                };
                let mut body = json!({
                    "error": mutation_message(o.status),
                    "id": o.id,
                    "status": o.status,
                    "currentVersion": o.current_version,
                });
                if let Some(d) = &o.duplicate_memory_id {
                    body["duplicateMemoryId"] = json!(d);
                }
                (status, body)
            }
            MemoryError::Actor(a) => {
                tracing::warn!(error = %a, "actor unavailable");
                msg(503, &a.to_string())
            }
            MemoryError::Store(s) => match s.fault() {
                Some(crate::store::Fault::DiskFull) => msg(
                    507,
                    &format!("disk full: {s}; reads still work, writes resume once space is freed"),
                ),
                Some(crate::store::Fault::ReadOnly) => {
                    msg(503, &format!("store is read-only: {s}; reads still work"))
                }
                None => {
                    tracing::error!(error = %s, "storage fault");
                    msg(500, "internal storage error")
                }
            },
        }
    }
}

/// Human text for a refused mutation.
pub fn mutation_message(s: MutationStatus) -> &'static str {
    match s {
        MutationStatus::NotFound => "not found",
        MutationStatus::IsDeleted => "memory is deleted",
        MutationStatus::AlreadyDeleted => "memory is already deleted",
        MutationStatus::NotDeleted => "memory is not deleted",
        MutationStatus::VersionConflict => "version conflict",
        MutationStatus::DuplicateContentHash => "another memory already has this content",
        MutationStatus::PinnedRequiresForce => "pinned memory requires force",
        MutationStatus::AutonomousForceDenied => {
            "autonomous actors may not force-delete pinned memories"
        }
        MutationStatus::RetentionExpired => "retention window expired",
        MutationStatus::InvalidRequest => "invalid request",
        MutationStatus::OutOfScope => "memory is outside the token's scope",
        MutationStatus::Updated
        | MutationStatus::NoChanges
        | MutationStatus::Deleted
        | MutationStatus::Recovered => "ok",
    }
}

/// Response of remember.
#[derive(Debug, Clone, Serialize)]
pub struct Remembered {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub tags: Option<String>,
    pub pinned: bool,
    pub importance: f64,
    pub content: String,
    pub embedded: bool,
    pub deduped: bool,
}

/// Response of list.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub memories: Vec<MemoryRecord>,
    /// Live records matching the filters (all pages).
    pub count: i64,
    pub stats: ListStats,
}

/// Response of history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub memory_id: String,
    pub count: usize,
    pub history: Vec<HistoryEntry>,
}

/// The keyword leg of one recall.
#[derive(Clone)]
enum KeywordQuery {
    /// Plain words and phrases: any may match (`search::keyword_any`).
    Any(Vec<String>),
    /// A query with a written `AND`/`NOT`: one FTS5 expression.
    Expr(String),
}

/// Response of feedback.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackRecorded {
    pub ok: bool,
    /// Valid (numeric) ratings in the request.
    pub recorded: usize,
}

/// Response of recall.
#[derive(Debug, Clone, Serialize)]
pub struct Recalled {
    pub results: Vec<Scored>,
    pub query: String,
    pub method: &'static str,
}

/// Response of a batch forget preview.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgetPreview {
    pub mode: &'static str,
    pub count: usize,
    pub requires_confirm: bool,
    pub confirm_token: String,
    pub candidates: Vec<Candidate>,
}

/// Response of a batch forget execution.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetExecuted {
    pub mode: &'static str,
    pub requested: usize,
    pub deleted: usize,
    pub results: Vec<MutationOutcome>,
}

/// Either answer of batch forget.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BatchForgetResponse {
    Preview(ForgetPreview),
    Executed(ForgetExecuted),
}

/// Response of batch modify.
#[derive(Debug, Clone, Serialize)]
pub struct BatchModified {
    pub total: usize,
    pub updated: usize,
    pub results: Vec<MutationOutcome>,
}

/// `confirmToken`: first 32 hex chars of sha256 over the sorted ids joined by `|`.
pub fn confirm_token(ids: &[String]) -> String {
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let digest = hex::encode(Sha256::digest(sorted.join("|").as_bytes()));
    digest[..32].to_string()
}

/// The memory operations, shared by every front.
#[derive(Clone)]
pub struct MemoryService {
    config: Arc<Config>,
    registry: Registry,
    reads: ReadPool,
    access: Arc<AccessTracker>,
    cache: Arc<cache::RecallCache>,
    /// The keyword leg's doclists, kept between recalls.
    postings: Arc<crate::store::postings::Postings>,
    timeout: Duration,
    embed: Arc<EmbedService>,
    index: Arc<VectorIndex>,
    /// Calls refused by the rate-limit ledger.
    rate_rejections: Arc<std::sync::atomic::AtomicU64>,
    /// Query embeddings run for callers with a deadline, at most one per
    /// core but one (see `RecallRequest::vector_wait`).
    late_embeds: Arc<tokio::sync::Semaphore>,
}

impl MemoryService {
    /// Operations over the given actors and pool.
    pub fn new(
        config: Arc<Config>,
        registry: Registry,
        reads: ReadPool,
        access: Arc<AccessTracker>,
        generation: Arc<cache::Generation>,
        embed: Arc<EmbedService>,
        index: Arc<VectorIndex>,
    ) -> Self {
        let timeout = Duration::from_millis(config.settings.server.actor_timeout_ms);
        let postings = Arc::new(crate::store::postings::Postings::new(generation.clone()));
        let cache = Arc::new(cache::RecallCache::new(
            config.settings.server.recall_cache_entries,
            generation,
        ));
        MemoryService {
            config,
            registry,
            reads,
            access,
            cache,
            postings,
            timeout,
            embed,
            index,
            rate_rejections: Arc::default(),
            // One core fewer than the machine has (at least one): under a
            // flood of new prompts a core stays free for the searches.
            late_embeds: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            )),
        }
    }

    /// Admit `caller` to `op`: its role must grant the permission, and in
    /// team and hybrid mode the ledger must have room for the operation.
    pub async fn admit(&self, caller: &Caller, op: Operation) -> Result<(), MemoryError> {
        caller.permit(op.permission())?;
        let ops = op.rate_ops(caller);
        if caller.role.is_none()
            || ops.is_empty()
            || self.config.settings.auth.mode == AuthMode::Local
        {
            return Ok(());
        }
        let actor = caller.actor.clone();
        let decision = self
            .registry
            .call_ledger(Duration::from_secs(2), |reply| LedgerMsg::Check {
                actor,
                ops: ops.to_vec(),
                reply,
            })
            .await
            .map_err(|e| MemoryError::Unavailable(e.to_string()))?;
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after_ms } => {
                self.rate_rejections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(MemoryError::RateLimited { retry_after_ms })
            }
        }
    }

    /// Calls the rate-limit ledger refused since start.
    pub fn rate_rejections(&self) -> u64 {
        self.rate_rejections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The persisted token revocations (read once at start).
    pub async fn revocations(&self) -> Result<crate::auth::Revocations, MemoryError> {
        Ok(self.reads.read(crate::auth::Revocations::load).await?)
    }

    fn check_writable(&self) -> Result<(), MemoryError> {
        if self.config.settings.memory.pipeline_v2.mutations_frozen {
            Err(MemoryError::Frozen)
        } else {
            Ok(())
        }
    }

    async fn write<T: Send + 'static>(
        &self,
        make: impl Fn(crate::actors::store_writer::Reply<T>) -> WriteOp,
    ) -> Result<T, MemoryError> {
        let out = self
            .registry
            .call_writer(self.timeout, |reply| WriterMsg::Write(make(reply)))
            .await?;
        Ok(out?)
    }

    /// Store a memory (or return its live duplicate).
    pub async fn remember(
        &self,
        caller: &Caller,
        req: RememberRequest,
    ) -> Result<Remembered, MemoryError> {
        self.admit(caller, Operation::Remember).await?;
        self.check_writable()?;
        let claimed = req.who.clone().filter(|w| !w.trim().is_empty());
        let req_wait = req.wait_for_embedding.unwrap_or(false);
        let new = req.into_new_memory(caller, self.config.settings.memory.max_content_bytes)?;
        let mut audit = caller.audit(claimed.as_deref());
        if claimed.is_none() && !caller.verified && audit.changed_by == ANONYMOUS {
            audit.changed_by = new.who.clone();
        }
        let wait = req_wait;
        let out = self
            .write(|reply| WriteOp::Remember {
                new: Box::new(new.clone()),
                audit: audit.clone(),
                reply,
            })
            .await?;
        let mut r = out.record;
        if wait && r.embedding_model.is_none() && self.embed.is_ready() {
            // Embed this one now, bounded; on timeout or failure the
            // backfill still picks it up later.
            let item = vec![(0, r.id.clone(), r.content.clone(), r.content_hash.clone())];
            let embedded = tokio::time::timeout(
                self.embed.wait_timeout(),
                self.embed_and_store(item, Lane::Query),
            )
            .await;
            if matches!(embedded, Ok(Ok(1))) {
                r.embedding_model = Some(self.embed.model().to_string());
            }
        }
        Ok(Remembered {
            id: r.id,
            kind: r.kind,
            tags: r.tags,
            pinned: r.pinned,
            importance: r.importance,
            content: r.content,
            embedded: r.embedding_model.is_some(),
            deduped: out.deduped,
        })
    }

    /// One live record.
    pub async fn get(&self, caller: &Caller, id: String) -> Result<MemoryRecord, MemoryError> {
        self.get_record(caller, id, false).await
    }

    /// One record; a forgotten one too when `include_deleted` (to show and
    /// recover it).
    pub async fn get_record(
        &self,
        caller: &Caller,
        id: String,
        include_deleted: bool,
    ) -> Result<MemoryRecord, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        let scope = caller.scope.clone();
        match self
            .reads
            .read(move |c| memories::lookup(c, &id, &scope))
            .await?
        {
            memories::Lookup::Found(r) if include_deleted || !r.is_deleted => Ok(*r),
            memories::Lookup::Found(_) | memories::Lookup::Missing => Err(MemoryError::NotFound),
            memories::Lookup::OutOfScope => Err(out_of_scope()),
        }
    }

    /// Live records matching `filter`, newest first, with the number that
    /// match and the statistics of the caller's scope.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: i64,
        offset: i64,
        mut filter: RecallFilter,
    ) -> Result<Listing, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        if !(1..=1000).contains(&limit) || offset < 0 {
            return Err(MemoryError::BadRequest(
                "limit must be 1..1000 and offset >= 0".into(),
            ));
        }
        filter.scope = caller.scope.clone();
        filter.partition = None;
        Ok(self
            .reads
            .read(move |c| {
                let stats = memories::stats(c, &filter.scope)?;
                // Unfiltered, the count is the kept total (no scan).
                let count = if filter.only_scope() {
                    stats.total
                } else {
                    memories::count(c, &filter)?
                };
                Ok(Listing {
                    memories: memories::list(c, &filter, limit, offset)?,
                    count,
                    stats,
                })
            })
            .await?)
    }

    /// History of a memory (deleted ones too), oldest first.
    pub async fn history(
        &self,
        caller: &Caller,
        id: String,
        limit: i64,
    ) -> Result<History, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        let limit = limit.clamp(1, 1000);
        let scope = caller.scope.clone();
        self.reads
            .read(move |c| {
                match memories::lookup(c, &id, &scope)? {
                    memories::Lookup::Found(_) => {}
                    memories::Lookup::Missing => return Ok(Err(MemoryError::NotFound)),
                    memories::Lookup::OutOfScope => return Ok(Err(out_of_scope())),
                }
                let history = memories::history(c, &id, limit)?;
                Ok(Ok(History {
                    memory_id: id,
                    count: history.len(),
                    history,
                }))
            })
            .await?
    }

    /// PATCH one memory.
    pub async fn modify(
        &self,
        caller: &Caller,
        item: Edit,
    ) -> Result<MutationOutcome, MemoryError> {
        self.admit(caller, Operation::Modify).await?;
        self.check_writable()?;
        let req = item.into_request(caller, None, self.config.settings.memory.max_content_bytes)?;
        let audit = caller.audit(item_changed_by(&req));
        let mut out = self
            .write(|reply| WriteOp::Modify {
                reqs: vec![req.0.clone()],
                audit: audit.clone(),
                reply,
            })
            .await?;
        let outcome = out
            .pop()
            .ok_or_else(|| StoreError::Task("empty modify result".into()))?;
        refuse_unless_success(outcome)
    }

    /// DELETE one memory (soft).
    pub async fn forget(
        &self,
        caller: &Caller,
        req: ForgetRequest,
    ) -> Result<MutationOutcome, MemoryError> {
        self.admit(caller, Operation::Forget { force: req.force })
            .await?;
        self.check_writable()?;
        if req.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(MemoryError::BadRequest("reason is required".into()));
        }
        let req = ForgetRequest {
            scope: caller.scope.clone(),
            autonomous: caller.is_autonomous(),
            ..req
        };
        let audit = caller.audit(None);
        let mut out = self
            .write(|reply| WriteOp::Forget {
                reqs: vec![req.clone()],
                audit: audit.clone(),
                reply,
            })
            .await?;
        let outcome = out
            .pop()
            .ok_or_else(|| StoreError::Task("empty forget result".into()))?;
        refuse_unless_success(outcome)
    }

    /// Recover a tombstone.
    pub async fn recover(
        &self,
        caller: &Caller,
        req: RecoverRequest,
    ) -> Result<MutationOutcome, MemoryError> {
        self.admit(caller, Operation::Recover).await?;
        self.check_writable()?;
        if req.reason.trim().is_empty() {
            return Err(MemoryError::BadRequest("reason is required".into()));
        }
        let req = RecoverRequest {
            scope: caller.scope.clone(),
            ..req
        };
        let audit = caller.audit(None);
        let outcome = self
            .write(|reply| WriteOp::Recover {
                req: req.clone(),
                audit: audit.clone(),
                reply,
            })
            .await?;
        refuse_unless_success(outcome)
    }

    /// Batch forget: preview candidates or execute.
    pub async fn batch_forget(
        &self,
        caller: &Caller,
        req: BatchForgetRequest,
    ) -> Result<BatchForgetResponse, MemoryError> {
        self.admit(caller, Operation::BatchForget).await?;
        self.check_writable()?;
        let req = req.validated()?;
        let candidates = self.forget_candidates(caller, &req).await?;
        let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        let token = confirm_token(&ids);
        if !req.execute {
            return Ok(BatchForgetResponse::Preview(ForgetPreview {
                mode: "preview",
                count: candidates.len(),
                requires_confirm: candidates.len() > CONFIRM_THRESHOLD,
                confirm_token: token,
                candidates,
            }));
        }
        let reason = req
            .reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| MemoryError::BadRequest("reason is required to execute".into()))?;
        if ids.len() > CONFIRM_THRESHOLD && req.confirm_token.as_deref() != Some(token.as_str()) {
            return Err(MemoryError::BadRequest(format!(
                "{} candidates: confirm_token from the preview is required",
                ids.len()
            )));
        }
        let reqs: Vec<ForgetRequest> = ids
            .iter()
            .map(|id| ForgetRequest {
                id: id.clone(),
                reason: Some(reason.clone()),
                force: false,
                if_version: None,
                scope: caller.scope.clone(),
                autonomous: caller.is_autonomous(),
            })
            .collect();
        let audit = caller.audit(None);
        let results = self
            .write(|reply| WriteOp::Forget {
                reqs: reqs.clone(),
                audit: audit.clone(),
                reply,
            })
            .await?;
        Ok(BatchForgetResponse::Executed(ForgetExecuted {
            mode: "execute",
            requested: ids.len(),
            deleted: results
                .iter()
                .filter(|r| r.status == MutationStatus::Deleted)
                .count(),
            results,
        }))
    }

    async fn forget_candidates(
        &self,
        caller: &Caller,
        req: &requests::ValidForget,
    ) -> Result<Vec<Candidate>, MemoryError> {
        let sel = BatchSelector {
            scope: caller.scope.clone(),
            ..req.selector.clone()
        };
        let Some(query) = req.query.clone() else {
            return Ok(self
                .reads
                .read(move |c| memories::select_candidates(c, &sel))
                .await?);
        };
        let Some(expr) = fts::match_expr(&query, fts::Join::All).map(fts::content_only) else {
            return Ok(Vec::new());
        };
        let filter = RecallFilter {
            kind: sel.kind.clone(),
            tags: sel.tags.clone(),
            who: sel.who.clone(),
            since: sel.since.clone(),
            until: sel.until.clone(),
            scope: sel.scope.clone(),
            ..RecallFilter::default()
        };
        let limit = sel.limit;
        let hits = self
            .reads
            .read(move |c| search::keyword(c, &expr, &filter, limit))
            .await?;
        let norm = search::normalise_bm25(&hits.iter().map(|h| h.raw).collect::<Vec<_>>());
        let ids = sel.ids.clone();
        let source_type = sel.source_type.clone();
        let wanted: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        // Version and source type are not in the hit; read them for the survivors.
        let meta = self
            .reads
            .read(move |c| {
                let mut out = Vec::with_capacity(wanted.len());
                for id in wanted {
                    out.push(memories::get_live(c, &id, &Scope::default())?);
                }
                Ok(out)
            })
            .await?;
        Ok(hits
            .into_iter()
            .zip(norm)
            .zip(meta)
            .filter_map(|((h, score), rec)| {
                let rec = rec?;
                if ids.as_ref().is_some_and(|ids| !ids.contains(&h.id)) {
                    return None;
                }
                if source_type
                    .as_ref()
                    .is_some_and(|s| rec.source_type.as_ref() != Some(s))
                {
                    return None;
                }
                Some(Candidate {
                    id: h.id.clone(),
                    score: search::round2(score),
                    pinned: rec.pinned,
                    version: rec.version,
                })
            })
            .collect())
    }

    /// Batch modify: each patch on its own; bad items are reported, not fatal.
    pub async fn batch_modify(
        &self,
        caller: &Caller,
        items: Vec<Result<Edit, (String, String)>>,
        reason: Option<String>,
        changed_by: Option<String>,
    ) -> Result<BatchModified, MemoryError> {
        self.admit(caller, Operation::Modify).await?;
        self.check_writable()?;
        if items.is_empty() {
            return Err(MemoryError::BadRequest(
                "patches must hold at least one patch".into(),
            ));
        }
        if items.len() > 200 {
            return Err(MemoryError::BadRequest(
                "at most 200 patches per batch".into(),
            ));
        }
        let total = items.len();
        let mut results: Vec<Option<MutationOutcome>> = vec![None; total];
        let mut reqs = Vec::new();
        let mut slots = Vec::new();
        let max = self.config.settings.memory.max_content_bytes;
        for (i, item) in items.into_iter().enumerate() {
            let parsed = item.and_then(|it| {
                it.into_request(caller, reason.as_deref(), max)
                    .map_err(|e| (it.id.clone(), e.to_string()))
            });
            match parsed {
                Ok((req, _)) => {
                    slots.push(i);
                    reqs.push(req);
                }
                Err((id, e)) => {
                    let mut o = MutationOutcome::refused(&id, MutationStatus::InvalidRequest, None);
                    o.error = Some(e);
                    results[i] = Some(o);
                }
            }
        }
        if !reqs.is_empty() {
            let audit = caller.audit(changed_by.as_deref());
            let outs = self
                .write(|reply| WriteOp::Modify {
                    reqs: reqs.clone(),
                    audit: audit.clone(),
                    reply,
                })
                .await?;
            for (slot, out) in slots.into_iter().zip(outs) {
                results[slot] = Some(out);
            }
        }
        let results: Vec<MutationOutcome> = results.into_iter().flatten().collect();
        Ok(BatchModified {
            total,
            updated: results
                .iter()
                .filter(|r| r.status == MutationStatus::Updated)
                .count(),
            results,
        })
    }

    /// Hybrid recall (SPEC §6): the keyword leg, plus the vector leg when
    /// a provider can embed the query; `method` says which ran.
    pub async fn recall(
        &self,
        caller: &Caller,
        req: RecallRequest,
    ) -> Result<Recalled, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        // Control characters (a NUL byte included) are separators: they
        // reach neither the keyword syntax nor the embedding.
        let query: String = req
            .query
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string();
        if query.is_empty() {
            return Err(MemoryError::BadRequest("query is required".into()));
        }
        let limit = req.limit.unwrap_or(10);
        if !(1..=200).contains(&limit) {
            return Err(MemoryError::BadRequest("limit must be 1..200".into()));
        }
        // A plain question runs the any-term leg (operands looked up one
        // by one); one with a written AND or NOT runs as one FTS5
        // expression ranked by BM25.
        let keyword = match fts::plain_operands(&query) {
            Some(ops) if ops.is_empty() => None,
            Some(ops) => Some(KeywordQuery::Any(ops)),
            None => fts::match_expr(&query, fts::Join::Any).map(KeywordQuery::Expr),
        };
        let ranking = self.config.settings.search.ranking(limit as usize);
        let mut filter = req.filter;
        filter.scope = caller.scope.clone();
        // The text embedded for the vector leg: the query, unless the
        // caller gave a fuller one (the prompt hook searches its terms by
        // keyword and the cleaned prompt by meaning).
        let vector_text: String = req
            .vector_text
            .map(|v| {
                v.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| query.clone());
        // The query text is part of the key: speaker awareness reads it.
        // No key is made for a disabled cache.
        let key_for = |method: &str| {
            self.cache.enabled().then(|| {
                format!("{query}\u{1}{vector_text}\u{1}{method}\u{1}{limit}\u{1}{filter:?}")
            })
        };
        let hybrid = self.embed.usable_for_query();
        let expected = if hybrid { "hybrid" } else { "keyword" };
        if let Some(hit) = key_for(expected).and_then(|k| self.cache.get(&k)) {
            self.access.record(hit.iter().map(|r| r.id.as_str()));
            return Ok(Recalled {
                results: hit.to_vec(),
                query,
                method: expected,
            });
        }
        let at = self.cache.generation();
        if !hybrid {
            // Keyword only: nothing runs beside the leg, so the leg and the
            // ranking share one read (no second read to re-check its hits).
            let Some(keyword) = keyword else {
                return Ok(Recalled {
                    results: Vec::new(),
                    query,
                    method: "keyword",
                });
            };
            let q = query.clone();
            let leg_filter = filter.clone();
            let postings = self.postings.clone();
            let scored = self
                .reads
                .read(move |c| {
                    let (kw, confidence) = match &keyword {
                        KeywordQuery::Any(ops) => {
                            search::keyword_any(c, &postings, ops, &leg_filter, ranking.depth, 1)?
                        }
                        KeywordQuery::Expr(e) => (
                            search::keyword(c, e, &leg_filter, ranking.depth as i64)?,
                            1.0,
                        ),
                    };
                    search::rank(
                        c,
                        Some(&postings),
                        kw,
                        confidence,
                        Vec::new(),
                        &leg_filter,
                        &q,
                        &ranking,
                        limit as usize,
                    )
                })
                .await?;
            let results = Arc::new(scored);
            if let Some(key) = key_for("keyword") {
                self.cache.put(key, at, results.clone());
            }
            self.access.record(results.iter().map(|r| r.id.as_str()));
            return Ok(Recalled {
                results: results.to_vec(),
                query,
                method: "keyword",
            });
        }
        // The keyword leg runs on the read pool while the query is embedded
        // (a new query's embedding is most of a hybrid recall's time).
        let leg = |min: u32| {
            let keyword = keyword.clone();
            let filter = filter.clone();
            let postings = self.postings.clone();
            self.reads.read(move |c| match &keyword {
                Some(KeywordQuery::Any(ops)) => {
                    search::keyword_any(c, &postings, ops, &filter, ranking.depth, min)
                }
                Some(KeywordQuery::Expr(e)) => {
                    Ok((search::keyword(c, e, &filter, ranking.depth as i64)?, 1.0))
                }
                None => Ok((Vec::new(), 0.0)),
            })
        };
        // Beside the vector leg, a long question's one-word matches are
        // noise (a paraphrase shares one common word with many memories).
        let long = matches!(&keyword, Some(KeywordQuery::Any(ops)) if ops.len() >= 5);
        let gated = hybrid && long;
        let vector_wait = req.vector_wait;
        let embedding = async {
            // A failing provider means keyword-only, never a failed recall.
            if !hybrid {
                return None;
            }
            let Some(wait) = vector_wait else {
                return self.embed.embed_query(&vector_text).await.ok();
            };
            // A caller with a deadline (the prompt hook) takes the keyword
            // leg alone rather than wait longer for the model, or queue
            // behind as many embeddings as there are cores. An embedding
            // it stops waiting for still finishes and is cached, so the
            // same text runs both legs next time.
            if let Some(v) = self.embed.cached_query(&vector_text) {
                return Some(v);
            }
            let permit = self.late_embeds.clone().try_acquire_owned().ok()?;
            let embed = self.embed.clone();
            let text = vector_text.clone();
            let task = tokio::spawn(async move {
                let _permit = permit;
                embed.embed_query(&text).await.ok()
            });
            tokio::time::timeout(wait, task)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        };
        let (kw, qvec) = tokio::join!(leg(if gated { 2 } else { 1 }), embedding);
        // (Gated but the vector leg did not run or found nothing: the
        // rank read below runs the leg again without the gate.)
        let (kw, confidence) = kw?;
        let method = if qvec.is_some() { "hybrid" } else { "keyword" };
        if keyword.is_none() && qvec.is_none() {
            return Ok(Recalled {
                results: Vec::new(),
                query,
                method,
            });
        }
        let index = self.index.clone();
        let q = query.clone();
        let leg_filter = filter.clone();
        let postings = self.postings.clone();
        let scored = self
            .reads
            .read(move |c| {
                let vec = match &qvec {
                    Some(v) => search::vector(c, &index, v, &leg_filter, ranking.depth, None)?,
                    None => Vec::new(),
                };
                let (kw, confidence) = match (&keyword, gated && vec.is_empty()) {
                    // The gate is for beside the vector leg: when it found
                    // nothing (no vectors yet), one-word matches count.
                    (Some(KeywordQuery::Any(ops)), true) => {
                        search::keyword_any(c, &postings, ops, &leg_filter, ranking.depth, 1)?
                    }
                    // Found in an earlier read: what a write changed or
                    // removed since is dropped or refreshed here.
                    _ => (
                        search::still_live(c, kw, &leg_filter, Some(&postings))?,
                        confidence,
                    ),
                };
                search::rank(
                    c,
                    Some(&postings),
                    kw,
                    confidence,
                    vec,
                    &leg_filter,
                    &q,
                    &ranking,
                    limit as usize,
                )
            })
            .await?;
        let results = Arc::new(scored);
        if let Some(key) = key_for(method) {
            self.cache.put(key, at, results.clone());
        }
        self.access.record(results.iter().map(|r| r.id.as_str()));
        Ok(Recalled {
            results: results.to_vec(),
            query,
            method,
        })
    }

    /// The `k` nearest memories of memory `id` by vector (in the caller's
    /// scope, live, itself excluded). `None` when it has no vector yet.
    pub async fn similar(
        &self,
        caller: &Caller,
        id: String,
        k: usize,
    ) -> Result<Option<Vec<Scored>>, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        let scope = caller.scope.clone();
        let index = self.index.clone();
        let min_score = self.config.settings.search.min_score;
        let out = self
            .reads
            .read(move |c| {
                let rec = match memories::lookup(c, &id, &scope)? {
                    memories::Lookup::Found(r) if !r.is_deleted => r,
                    memories::Lookup::OutOfScope => return Ok(Err(true)),
                    _ => return Ok(Err(false)),
                };
                let found: Option<(i64, Vec<u8>)> = c
                    .prepare_cached(
                        "SELECT m.rowid, e.vector FROM memories m
                         JOIN memory_embeddings e ON e.memory_rowid = m.rowid AND e.content_hash = m.content_hash
                         WHERE m.id = ?1 AND m.embedding_model IS NOT NULL",
                    )?
                    .query_row([&rec.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .ok();
                let Some((rowid, q)) =
                    found.and_then(|(r, b)| crate::store::vec::from_blob(&b).map(|v| (r, v)))
                else {
                    return Ok(Ok(None));
                };
                let filter = RecallFilter {
                    scope,
                    ..RecallFilter::default()
                };
                // Similarity is the cosine itself, not scaled by the leg.
                let hits = search::vector(c, &index, &q, &filter, k, Some(rowid))?
                    .into_iter()
                    .map(|(hit, score)| search::Candidate {
                        hit,
                        score,
                        source: "vector",
                    })
                    .collect();
                Ok(Ok(Some(search::finish(hits, min_score, k))))
            })
            .await?;
        match out {
            Ok(v) => Ok(v),
            Err(true) => Err(out_of_scope()),
            Err(false) => Err(MemoryError::NotFound),
        }
    }

    /// The `k` live memories of the partition `scope` names exactly (unset
    /// fields must be unset) most similar to `text` (vector leg when a
    /// provider is ready, else keyword), as (id, content): the candidates
    /// of an extraction decision.
    pub async fn neighbours(
        &self,
        text: &str,
        scope: &Scope,
        exclude: Option<String>,
        k: usize,
    ) -> Result<Vec<(String, String)>, MemoryError> {
        let filter = RecallFilter {
            partition: Some([
                scope.project.clone(),
                scope.agent.clone(),
                scope.user.clone(),
            ]),
            ..RecallFilter::default()
        };
        let qvec = if self.embed.is_ready() {
            self.embed
                .embed(&[text.to_string()], Lane::Background)
                .await
                .ok()
                .and_then(|mut v| v.pop())
        } else {
            None
        };
        let any = fts::match_expr(text, fts::Join::Any).map(fts::content_only);
        let index = self.index.clone();
        Ok(self
            .reads
            .read(move |c| {
                let hits: Vec<search::Hit> = match (&qvec, &any) {
                    (Some(q), _) => search::vector(c, &index, q, &filter, k + 1, None)?
                        .into_iter()
                        .map(|(h, _)| h)
                        .collect(),
                    // Any shared word is a candidate; BM25 ranks them.
                    (None, Some(any)) => search::keyword(c, any, &filter, k as i64 + 1)?,
                    (None, _) => Vec::new(),
                };
                Ok(hits
                    .into_iter()
                    .filter(|h| Some(&h.id) != exclude.as_ref())
                    .take(k)
                    .map(|h| (h.id.clone(), h.content.clone()))
                    .collect())
            })
            .await?)
    }

    /// Live memories without a vector after rowid `cursor`, in rowid
    /// order: (rowid, id, content, content hash).
    pub async fn embedding_gaps_after(
        &self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, String, String)>, MemoryError> {
        Ok(self
            .reads
            .read(move |c| crate::store::vec::gaps_after(c, cursor, limit))
            .await?)
    }

    /// Embed (id, content, hash) items and store their vectors through the
    /// writer. Returns how many were stored (a memory whose content changed
    /// meanwhile is skipped).
    pub async fn embed_and_store(
        &self,
        items: Vec<(i64, String, String, String)>,
        lane: Lane,
    ) -> Result<usize, EmbedOrStore> {
        if items.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> = items.iter().map(|i| i.2.clone()).collect();
        let vectors = self.embed.embed(&texts, lane).await?;
        let items: Vec<NewVector> = items
            .into_iter()
            .zip(vectors)
            .map(|((_, id, _, hash), vector)| NewVector {
                memory_id: id,
                content_hash: hash,
                vector,
            })
            .collect();
        let model = self.embed.model().to_string();
        Ok(self
            .write(|reply| WriteOp::Embed {
                items: items.clone(),
                model: model.clone(),
                reply,
            })
            .await?)
    }

    /// One step of the job queue, through the writer.
    pub async fn job(&self, op: JobOp) -> Result<JobReply, MemoryError> {
        self.write(|reply| WriteOp::Job {
            op: op.clone(),
            reply,
        })
        .await
    }

    /// A record whatever its scope or state (the pipeline's own reads).
    pub async fn record_unscoped(&self, id: &str) -> Result<Option<MemoryRecord>, MemoryError> {
        let id = id.to_string();
        Ok(self
            .reads
            .read(move |c| {
                Ok(match memories::lookup(c, &id, &Scope::default())? {
                    memories::Lookup::Found(r) => Some(*r),
                    _ => None,
                })
            })
            .await?)
    }

    /// A job by id, if its memory lies in the caller's scope.
    pub async fn job_status(
        &self,
        caller: &Caller,
        id: String,
    ) -> Result<crate::store::jobs::Job, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        let scope = caller.scope.clone();
        let out = self
            .reads
            .read(move |c| {
                let Some(job) = crate::store::jobs::get(c, &id)? else {
                    return Ok(Err(MemoryError::NotFound));
                };
                if !scope.is_unscoped() {
                    if let memories::Lookup::OutOfScope =
                        memories::lookup(c, &job.memory_id, &scope)?
                    {
                        return Ok(Err(out_of_scope()));
                    }
                }
                Ok(Ok(job))
            })
            .await?;
        out
    }

    /// Record an agent's ratings of memories recall handed it. Ratings of
    /// ids that are unknown, deleted or outside the caller's scope are
    /// dropped silently (as Signet does), but counted in `recorded`, so
    /// the answer never tells a scoped caller which ids exist elsewhere.
    pub async fn feedback(
        &self,
        caller: &Caller,
        req: FeedbackRequest,
    ) -> Result<FeedbackRecorded, MemoryError> {
        self.admit(caller, Operation::Feedback).await?;
        self.check_writable()?;
        let recorded = req.ratings.len();
        let scope = caller.scope.clone();
        let ratings = req.ratings;
        let ratings = self
            .reads
            .read(move |c| {
                let mut kept = Vec::with_capacity(ratings.len());
                for (id, score) in ratings {
                    if let memories::Lookup::Found(r) = memories::lookup(c, &id, &scope)? {
                        if !r.is_deleted {
                            kept.push((id, score));
                        }
                    }
                }
                Ok(kept)
            })
            .await?;
        if !ratings.is_empty() {
            let key = req.session_key;
            self.write(|reply| WriteOp::Feedback {
                session_key: key.clone(),
                ratings: ratings.clone(),
                reply,
            })
            .await?;
        }
        Ok(FeedbackRecorded { ok: true, recorded })
    }

    /// Persist a revocation (the caller was admitted by
    /// [`tokens::Tokens::revoke`]); once this returns the caller must add it
    /// to the in-memory list before answering.
    pub(crate) async fn revoke(
        &self,
        caller: &Caller,
        kind: &'static str,
        value: String,
        at: i64,
    ) -> Result<(), MemoryError> {
        let by = caller.actor.clone();
        self.write(|reply| WriteOp::Revoke {
            kind,
            value: value.clone(),
            at,
            by: by.clone(),
            reply,
        })
        .await
    }

    /// Run a repair action through the store writer (the caller was
    /// admitted by `run_repair`).
    pub(crate) async fn repair(
        &self,
        caller: &Caller,
        action: crate::store::maintenance::RepairAction,
    ) -> Result<crate::store::maintenance::RepairOutcome, MemoryError> {
        self.check_writable()?;
        let audit = caller.audit(None);
        self.write(|reply| WriteOp::Repair {
            action,
            audit: audit.clone(),
            reply,
        })
        .await
    }

    /// Whether writes are allowed (the kill switch).
    pub fn writable(&self) -> Result<(), MemoryError> {
        self.check_writable()
    }

    /// Distinct `who` values (legacy search with `distinct=who`).
    pub async fn distinct_who(&self, caller: &Caller) -> Result<Vec<String>, MemoryError> {
        self.admit(caller, Operation::Recall).await?;
        let scope = caller.scope.clone();
        Ok(self
            .reads
            .read(move |c| search::distinct_who(c, &scope))
            .await?)
    }
}

/// Why embedding and storing vectors failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedOrStore {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] MemoryError),
}

fn item_changed_by(req: &(ModifyRequest, Option<String>)) -> Option<&str> {
    req.1.as_deref()
}

fn out_of_scope() -> MemoryError {
    MemoryError::Forbidden("memory is outside the token's scope".into())
}

fn refuse_unless_success(o: MutationOutcome) -> Result<MutationOutcome, MemoryError> {
    if o.status.is_success() {
        Ok(o)
    } else {
        Err(MemoryError::Refused(Box::new(o)))
    }
}

/// Infer a memory type from keywords in its content.
pub fn infer_type(content: &str) -> &'static str {
    let lower = content.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |ws: &[&str]| words.iter().any(|w| ws.contains(w));
    if has(&[
        "prefer",
        "prefers",
        "preferred",
        "like",
        "likes",
        "want",
        "wants",
    ]) {
        "preference"
    } else if has(&["decided", "agreed"]) || lower.contains("will use") {
        "decision"
    } else if has(&["learned", "discovered"]) {
        "learning"
    } else if has(&["bug", "issue", "broken"]) {
        "issue"
    } else if has(&["never", "always", "must"]) {
        "rule"
    } else {
        "fact"
    }
}

/// Memory types a client may set explicitly.
pub const KNOWN_TYPES: &[&str] = &[
    "fact",
    "preference",
    "decision",
    "learning",
    "issue",
    "rule",
    "rationale",
    "episodic",
    "procedural",
    "semantic",
    "system",
    "daily-log",
    "session_summary",
];

/// Build the record of a new memory (exposed for benches).
pub fn new_memory(
    req: RememberRequest,
    caller: &Caller,
    max: usize,
) -> Result<NewMemory, MemoryError> {
    req.into_new_memory(caller, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_inferred_from_keywords() {
        assert_eq!(infer_type("I prefer tabs"), "preference");
        assert_eq!(infer_type("We decided on Rust"), "decision");
        assert_eq!(infer_type("team will use warp"), "decision");
        assert_eq!(infer_type("I learned that WAL helps"), "learning");
        assert_eq!(infer_type("login is broken"), "issue");
        assert_eq!(infer_type("never push to main"), "rule");
        assert_eq!(infer_type("the sky is blue"), "fact");
        assert_eq!(infer_type("likely to rain"), "fact");
    }

    #[test]
    fn confirm_token_is_order_independent() {
        let a = confirm_token(&["b".into(), "a".into()]);
        let b = confirm_token(&["a".into(), "b".into()]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(a, hex::encode(Sha256::digest(b"a|b"))[..32]);
    }
}
