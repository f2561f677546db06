//! Harness hooks and sessions (`SPEC-agents.md` §1, §2, §8): what an agent
//! is told when a session starts, which memories ride along with each
//! prompt, the checkpoints a session leaves, and the session routes.
//!
//! Every hook admits its caller through the same door as the API (a hook
//! remember is a remember, a prompt's search is a recall, in the caller's
//! scope), then applies Signet's shared rules in this order: validation,
//! the runtime-path claim check (409), the presence upsert, bypass. The
//! live session state is [`state::Sessions`]; the text rules are in
//! [`text`].

pub mod state;
pub mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Caller, MemoryError, MemoryService, Operation, RecallRequest, RememberRequest};
use crate::actors::store_writer::{SessionWrite, WriteOp};
use crate::config::Config;
use crate::store::memories::{self, MemoryRecord};
use crate::store::search::RecallFilter;
use crate::store::sessions::{self, Checkpoint, NewCheckpoint, NewSummaryJob, Summary};
use state::{Due, RuntimePath, SessionInfo, Sessions, Touch};

/// The first line of every full inject.
const ACTIVE_LINE: &str = "[memory active | /remember | /recall]";
/// Identity files, their headings and caps (UTF-16 units), §8.
const IDENTITY_FILES: &[(&str, &str, usize)] = &[
    ("AGENTS.md", "## Agent Instructions", 12_000),
    ("SOUL.md", "## Soul", 4_000),
    ("IDENTITY.md", "## Identity", 2_000),
    ("USER.md", "## About Your User", 6_000),
];
const MEMORY_FILE: (&str, usize) = ("MEMORY.md", 10_000);
/// Recovery digest budget at session-start (characters).
const RECOVERY_CHARS: usize = 2_000;
/// Largest transcript file read (its tail is used).
const MAX_TRANSCRIPT_BYTES: u64 = 32 * 1024 * 1024;
/// Transcript files the daemon reads: harness logs, never keys or configs.
const TRANSCRIPT_EXTENSIONS: &[&str] = &["jsonl", "json", "txt", "md", "log"];

/// The fields every hook request shares.
#[derive(Debug, Clone, Default)]
pub struct HookMeta {
    pub harness: String,
    pub session_key: Option<String>,
    pub runtime_path: Option<RuntimePath>,
    pub project: Option<String>,
    pub agent_id: Option<String>,
}

/// A non-empty, trimmed string field of a hook body.
pub fn text_field(b: &Value, key: &str) -> Option<String> {
    b.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl HookMeta {
    /// The shared fields of a hook body: `harness` (required: `missing` is
    /// the 400 message), `sessionKey` (else `sessionId`), the runtime path
    /// (the header's if non-empty, else the body's), `project`, `agentId`.
    pub fn from_json(
        b: &Value,
        header_path: Option<&str>,
        missing: &str,
    ) -> Result<HookMeta, MemoryError> {
        if !b.is_object() {
            return Err(MemoryError::BadRequest(
                "request body must be a JSON object".into(),
            ));
        }
        let harness =
            text_field(b, "harness").ok_or_else(|| MemoryError::BadRequest(missing.into()))?;
        if harness.len() > 128 {
            return Err(MemoryError::BadRequest(
                "harness must be at most 128 characters".into(),
            ));
        }
        let path = header_path
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| text_field(b, "runtimePath"));
        let runtime_path = match path {
            None => None,
            Some(p) => Some(RuntimePath::parse(&p).ok_or_else(|| {
                MemoryError::BadRequest("runtimePath must be plugin or legacy".into())
            })?),
        };
        let session_key = text_field(b, "sessionKey").or_else(|| text_field(b, "sessionId"));
        if session_key.as_ref().is_some_and(|k| k.len() > 256) {
            return Err(MemoryError::BadRequest(
                "sessionKey must be at most 256 characters".into(),
            ));
        }
        Ok(HookMeta {
            harness,
            session_key,
            runtime_path,
            project: text_field(b, "project"),
            agent_id: text_field(b, "agentId"),
        })
    }
}

/// `identity` of a session-start reply.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A memory handed out by session-start.
#[derive(Debug, Clone, Serialize)]
pub struct StartMemory {
    pub id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub importance: f64,
    pub created_at: String,
}

/// The reply of session-start.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub memories: Vec<StartMemory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_context: Option<String>,
    pub inject: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bypassed: bool,
}

impl SessionStarted {
    fn empty(bypassed: bool) -> Self {
        SessionStarted {
            identity: None,
            memories: Vec::new(),
            recent_context: None,
            inject: String::new(),
            bypassed,
        }
    }
}

/// A user-prompt-submit request.
#[derive(Debug, Clone, Default)]
pub struct PromptRequest {
    pub meta: HookMeta,
    /// `userMessage` (already cleaned by the harness), else `userPrompt`.
    pub message: String,
    pub last_assistant: Option<String>,
    /// `memory_feedback`: ratings of what earlier prompts were given.
    pub feedback: Vec<(String, f64)>,
}

impl PromptRequest {
    pub fn from_json(b: &Value, header_path: Option<&str>) -> Result<Self, MemoryError> {
        const MISSING: &str = "harness and userMessage or userPrompt are required";
        let meta = HookMeta::from_json(b, header_path, MISSING)?;
        let message = text_field(b, "userMessage")
            .or_else(|| text_field(b, "userPrompt"))
            .ok_or_else(|| MemoryError::BadRequest(MISSING.into()))?;
        let feedback = match b.get("memory_feedback") {
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(id, v)| v.as_f64().map(|s| (id.clone(), s.clamp(-1.0, 1.0))))
                .collect(),
            _ => Vec::new(),
        };
        Ok(PromptRequest {
            meta,
            message,
            last_assistant: text_field(b, "lastAssistantMessage"),
            feedback,
        })
    }
}

/// The reply of user-prompt-submit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptInjected {
    pub inject: String,
    pub memory_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_terms: Option<Vec<String>>,
    /// `hybrid` or `keyword`: which legs actually ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<&'static str>,
    /// The ids injected (not in Signet's reply; lets a harness rate them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory_ids: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bypassed: bool,
}

impl PromptInjected {
    fn header_only(inject: String, terms: Option<Vec<String>>) -> Self {
        PromptInjected {
            inject,
            memory_count: 0,
            query_terms: terms,
            engine: None,
            memory_ids: Vec::new(),
            bypassed: false,
        }
    }
}

/// A session-end request.
#[derive(Debug, Clone, Default)]
pub struct EndRequest {
    pub meta: HookMeta,
    pub transcript_path: Option<String>,
    pub cwd: Option<String>,
    pub reason: Option<String>,
}

impl EndRequest {
    pub fn from_json(b: &Value, header_path: Option<&str>) -> Result<Self, MemoryError> {
        Ok(EndRequest {
            meta: HookMeta::from_json(b, header_path, "harness is required")?,
            transcript_path: text_field(b, "transcriptPath"),
            cwd: text_field(b, "cwd"),
            reason: text_field(b, "reason"),
        })
    }
}

/// The reply of session-end.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEnded {
    pub memories_saved: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Why no summary was queued, when a transcript was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bypassed: bool,
}

/// The reply of pre-compaction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreCompacted {
    pub summary_prompt: String,
    pub guidelines: String,
}

/// How long session-start's choice of memories is reused (see
/// `Hooks::start_memories`), and for how many (scope, project) pairs.
const START_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const START_CACHE_ENTRIES: usize = 512;

/// session-start's chosen memories per (scope, project): the store
/// generation they were read at, when, and the choice.
type StartCache =
    std::sync::Mutex<HashMap<String, (u64, std::time::Instant, Arc<Vec<MemoryRecord>>)>>;

/// The harness hooks and session routes over the memory operations.
#[derive(Clone)]
pub struct Hooks {
    memories: MemoryService,
    config: Arc<Config>,
    sessions: Arc<Sessions>,
    start_cache: Arc<StartCache>,
}

/// The claim check's refusal.
fn claimed(owner: RuntimePath) -> MemoryError {
    MemoryError::Conflict(format!("session claimed by {} path", owner.as_str()))
}

impl Hooks {
    /// Hooks over the memory operations, with empty session state.
    pub fn new(memories: MemoryService, config: Arc<Config>) -> Self {
        Hooks {
            memories,
            config,
            sessions: Arc::default(),
            start_cache: Arc::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    /// `# Current Date & Time\nNOW (TZ)\n`.
    fn date_header(&self) -> String {
        format!(
            "# Current Date & Time\n{} ({})\n",
            text::now_text(self.now()),
            text::time_zone()
        )
    }

    /// Validation is done; apply the claim check, then the presence upsert
    /// (session-start and prompts), and say whether the session is
    /// bypassed.
    fn enter(
        &self,
        caller: &Caller,
        meta: &HookMeta,
        presence: bool,
        claim: bool,
    ) -> Result<bool, MemoryError> {
        let Some(key) = meta.session_key.as_deref() else {
            return Ok(false);
        };
        let now = self.now();
        let scope = &caller.scope;
        if !claim {
            self.sessions
                .check_claim(scope, key, meta.runtime_path, now)
                .map_err(claimed)?;
        }
        if presence || claim {
            let t = Touch {
                scope,
                key,
                harness: &meta.harness,
                agent_id: meta.agent_id.as_deref(),
                project: meta.project.as_deref(),
            };
            let path = if claim { meta.runtime_path } else { None };
            self.sessions.touch(&t, path, now).map_err(claimed)?;
        }
        Ok(self.sessions.is_bypassed(scope, key))
    }

    /// POST /api/hooks/session-start.
    pub async fn session_start(
        &self,
        caller: &Caller,
        meta: HookMeta,
    ) -> Result<SessionStarted, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        if self.enter(caller, &meta, true, true)? {
            return Ok(SessionStarted::empty(true));
        }
        let now = self.now();
        if let Some(key) = &meta.session_key {
            // Marked served once the inject is built (below), so a start
            // that fails midway gets the full inject on its retry.
            if self.sessions.served(&caller.scope, key) {
                return Ok(SessionStarted {
                    identity: Some(Identity {
                        name: "Agent".into(),
                        description: None,
                    }),
                    memories: Vec::new(),
                    recent_context: None,
                    inject: format!("{ACTIVE_LINE}\n{}", self.date_header().trim_end()),
                    bypassed: false,
                });
            }
        }
        let settings = self.config.settings.hooks.session_start.clone();
        // The workspace files, the candidates and the recovery digest are
        // independent reads.
        let workspace = self.config.workspace.clone();
        let include_identity = settings.include_identity;
        let files =
            tokio::task::spawn_blocking(move || read_identity(&workspace, include_identity));
        let candidates = self.start_memories(caller, meta.project.as_deref(), now);
        let recovery = self.recovery(caller, &meta);
        let (files, chosen, recovery) = tokio::join!(files, candidates, recovery);
        let files = files.map_err(|e| MemoryError::Unavailable(e.to_string()))?;
        let chosen: Vec<MemoryRecord> = chosen?.to_vec();
        self.memories
            .access
            .record(chosen.iter().map(|m| m.id.as_str()));
        let identity = self.identity(&files);

        let mut parts: Vec<String> = vec![ACTIVE_LINE.to_string()];
        parts.push(format!("\n{}", self.date_header()));
        if let Some(project) = &meta.project {
            let agent = meta.agent_id.as_deref().unwrap_or("default");
            let peers = self.sessions.peers(
                &caller.scope,
                project,
                meta.session_key.as_deref(),
                agent,
                now,
            );
            if !peers.is_empty() {
                let mut s = String::from(
                    "\n## Active Peer Sessions\n\nOther Signet agent sessions are active right now:",
                );
                for p in &peers {
                    s.push_str(&format!(
                        "\n- {} ({})",
                        text::sanitise_field(&p.agent_id),
                        text::sanitise_field(&p.harness)
                    ));
                    if let Some(pr) = &p.project {
                        s.push_str(&format!(" project={}", text::sanitise_field(pr)));
                    }
                    s.push_str(&format!(
                        " session={} [seen {}]",
                        text::sanitise_field(&p.key),
                        text::ago(now - p.last_seen)
                    ));
                }
                if meta.harness == "codex" {
                    s.push_str(
                        "\nUse the agent_message_send and agent_message_inbox tools to talk to them.",
                    );
                }
                parts.push(s);
            }
        }
        let agents_present = files.identity.iter().any(|(name, _)| *name == "AGENTS.md");
        if !agents_present && identity.name != "Agent" && include_identity {
            let mut line = format!("\n## Agent Instructions\nYou are {}", identity.name);
            if let Some(d) = &identity.description {
                line.push_str(&format!(", {d}"));
            }
            line.push('.');
            parts.push(line);
        }
        for (name, body) in &files.identity {
            if let Some((_, heading, _)) = IDENTITY_FILES.iter().find(|(n, _, _)| n == name) {
                parts.push(format!("\n{heading}\n{body}"));
            }
        }
        if let Some(m) = &files.memory_md {
            parts.push(format!("\n## Working Memory\n{m}"));
        }
        if !chosen.is_empty() {
            let mut s = format!(
                "\n## Relevant Memories (auto-loaded | scored by importance x recency | {} results)\n",
                chosen.len()
            );
            let lines: Vec<String> = chosen
                .iter()
                .map(|m| {
                    let tags = m
                        .tags
                        .as_deref()
                        .filter(|t| !t.is_empty())
                        .map(|t| format!(" [{t}]"))
                        .unwrap_or_default();
                    format!(
                        "- {}{} ({})",
                        m.content,
                        tags,
                        text::short_date(&m.created_at)
                    )
                })
                .collect();
            s.push_str(&lines.join("\n"));
            parts.push(s);
        }
        let mut inject = parts.join("\n");
        let recovery = recovery.map(|d| format!("\n## Session Recovery Context\n{d}"));
        let reserve = recovery.as_deref().map_or(0, text::utf16_len);
        let cap = settings.max_inject_chars.saturating_sub(reserve);
        if text::utf16_len(&inject) > cap {
            let cut = text::cap_utf16(&inject, cap.saturating_sub(20));
            inject = format!(
                "{}\n[context truncated]",
                cut.trim_end_matches("\n[truncated]")
            );
        }
        if let Some(r) = recovery {
            inject.push_str(&r);
        }
        if let Some(key) = &meta.session_key {
            self.sessions.mark_served(&caller.scope, key);
        }
        Ok(SessionStarted {
            identity: Some(identity),
            memories: chosen
                .into_iter()
                .map(|m| StartMemory {
                    id: m.id,
                    content: m.content,
                    kind: m.kind,
                    importance: m.importance,
                    created_at: m.created_at,
                })
                .collect(),
            recent_context: files.memory_md,
            inject,
            bypassed: false,
        })
    }

    /// session-start's memories for the caller's scope and the request's
    /// project: the newest `3 × recallLimit` scored and budgeted
    /// ([`choose_start_memories`]). They change only when a memory does or
    /// as days pass, so the choice is kept per (scope, project) for one
    /// store generation and at most [`START_CACHE_TTL`].
    async fn start_memories(
        &self,
        caller: &Caller,
        project: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<MemoryRecord>>, MemoryError> {
        let key = format!("{:?}\u{1}{}", caller.scope, project.unwrap_or(""));
        let generation = self.memories.cache.generation();
        if let Ok(cache) = self.start_cache.lock() {
            if let Some((g, at, chosen)) = cache.get(&key) {
                if *g == generation && at.elapsed() < START_CACHE_TTL {
                    return Ok(chosen.clone());
                }
            }
        }
        let settings = &self.config.settings.hooks.session_start;
        let filter = RecallFilter {
            scope: caller.scope.clone(),
            ..RecallFilter::default()
        };
        let pool = (settings.recall_limit * 3).clamp(1, 1_000) as i64;
        let rows = self
            .memories
            .reads
            .read(move |c| memories::list(c, &filter, pool, 0))
            .await?;
        let chosen = Arc::new(choose_start_memories(
            rows,
            project,
            now,
            settings.candidate_pool_limit,
            settings.memory_budget_chars,
        ));
        if let Ok(mut cache) = self.start_cache.lock() {
            if cache.len() >= START_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (generation, std::time::Instant::now(), chosen.clone()));
        }
        Ok(chosen)
    }

    /// `agent.yaml`'s `agent.name`/`agent.description`, else IDENTITY.md's
    /// `name:` and `creature:`/`role:` lines, else `Agent`.
    fn identity(&self, files: &IdentityFiles) -> Identity {
        let agent = &self.config.settings.agent;
        let field = |k: &str| {
            agent
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(name) = field("name") {
            return Identity {
                name,
                description: field("description"),
            };
        }
        if let Some(raw) = &files.identity_raw {
            let line = |keys: &[&str]| {
                raw.lines().find_map(|l| {
                    let l = l.trim().trim_start_matches(['-', '*', ' ']);
                    keys.iter().find_map(|k| {
                        let lower = l.to_lowercase();
                        lower
                            .strip_prefix(k)
                            .and_then(|_| l.get(k.len()..))
                            .map(|v| v.trim().trim_matches('*').trim().to_string())
                            .filter(|v| !v.is_empty())
                    })
                })
            };
            if let Some(name) = line(&["name:"]) {
                return Identity {
                    name,
                    description: line(&["creature:", "role:"]),
                };
            }
        }
        Identity {
            name: "Agent".into(),
            description: None,
        }
    }

    /// The recovery digest for a session-start: the newest checkpoint of the
    /// key, else the newest of the project within 4 h; cut to 2000 chars.
    async fn recovery(&self, caller: &Caller, meta: &HookMeta) -> Option<String> {
        if !self.config.settings.hooks.continuity.enabled {
            return None;
        }
        let key = meta.session_key.clone();
        let project = meta.project.as_deref().map(normalise_project);
        if key.is_none() && project.is_none() {
            return None;
        }
        let scope = caller.scope.clone();
        let since = crate::store::to_iso(self.now() - state::SESSION_TTL);
        let found = self
            .memories
            .reads
            .read(move |c| {
                if let Some(k) = &key {
                    if let Some(cp) = sessions::checkpoints_of_session(c, k, &scope, 1)?.pop() {
                        return Ok(Some(cp));
                    }
                }
                match &project {
                    Some(p) => {
                        Ok(sessions::checkpoints_of_project(c, p, &scope, Some(&since), 1)?.pop())
                    }
                    None => Ok(None),
                }
            })
            .await
            .ok()??;
        let digest = text::redact(&found.digest);
        Some(if digest.chars().count() > RECOVERY_CHARS {
            format!(
                "{}\n[truncated]",
                text::first_chars(&digest, RECOVERY_CHARS)
            )
        } else {
            digest
        })
    }

    /// POST /api/hooks/user-prompt-submit.
    pub async fn prompt_submit(
        &self,
        caller: &Caller,
        req: PromptRequest,
    ) -> Result<PromptInjected, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        if self.enter(caller, &req.meta, true, false)? {
            let mut out = PromptInjected::header_only(String::new(), None);
            out.bypassed = true;
            return Ok(out);
        }
        let settings = self.config.settings.hooks.user_prompt_submit.clone();
        let key = req.meta.session_key.clone();
        if let (Some(k), false) = (&key, req.feedback.is_empty()) {
            if settings.agent_feedback {
                let fb = super::FeedbackRequest {
                    session_key: k.clone(),
                    ratings: req.feedback.clone(),
                };
                // A caller that may not write still gets its memories.
                if let Err(e) = self.memories.feedback(caller, fb).await {
                    tracing::debug!(error = %e, "prompt feedback not recorded");
                }
            }
        }
        let cleaned = text::clean_prompt(&req.message);
        let assistant = req.last_assistant.as_deref().map(text::clean_prompt);
        let terms = text::prompt_terms(&cleaned, assistant.as_deref());
        if let Some(k) = &key {
            self.continue_session(caller, k, &terms, &cleaned);
        }
        let out = self
            .inject_for_prompt(caller, key.as_deref(), &cleaned, terms)
            .await?;
        // Every prompt is a turn of the repeat window, injecting or not.
        if let Some(k) = &key {
            self.sessions.push_window(
                &caller.scope,
                k,
                out.memory_ids.clone(),
                settings.repeat_window,
            );
        }
        Ok(out)
    }

    /// The search of a prompt and the inject it makes.
    async fn inject_for_prompt(
        &self,
        caller: &Caller,
        key: Option<&str>,
        cleaned: &str,
        terms: Vec<String>,
    ) -> Result<PromptInjected, MemoryError> {
        let settings = &self.config.settings.hooks.user_prompt_submit;
        let header = self.date_header();
        if terms.is_empty() || cleaned.is_empty() {
            return Ok(PromptInjected::header_only(header, None));
        }
        let recall = RecallRequest {
            query: terms.join(" "),
            limit: Some(10),
            filter: RecallFilter {
                importance_min: Some(0.3),
                ..RecallFilter::default()
            },
            vector_text: Some(text::first_chars(cleaned, 200).to_string()),
            vector_wait: (settings.vector_wait_ms > 0)
                .then(|| std::time::Duration::from_millis(settings.vector_wait_ms)),
        };
        let found = self.memories.recall(caller, recall).await?;
        let top = found.results.first().map_or(0.0, |r| r.score);
        if top < settings.min_score {
            return Ok(PromptInjected::header_only(header, Some(terms)));
        }
        let recent = key
            .map(|k| self.sessions.recent_ids(&caller.scope, k))
            .unwrap_or_default();
        let mut used = 0usize;
        let mut chosen = Vec::new();
        for r in found.results {
            if chosen.len() >= settings.max_results {
                break;
            }
            if recent.contains(&r.id) {
                continue;
            }
            // Signet cuts at 500 chars and then appends the marker, so a
            // long memory never fits the 500-char budget; the marker is
            // counted inside the 500 here.
            let content = if r.content.chars().count() > 500 {
                format!("{} [truncated]", text::first_chars(&r.content, 488))
            } else {
                r.content.clone()
            };
            let len = text::utf16_len(&content);
            if used + len > settings.max_inject_chars {
                break;
            }
            used += len;
            chosen.push((r.id, content, r.created_at));
        }
        if chosen.is_empty() {
            return Ok(PromptInjected::header_only(header, Some(terms)));
        }
        let ids: Vec<String> = chosen.iter().map(|(id, _, _)| id.clone()).collect();
        let mut inject = format!(
            "{header}\n[signet:recall | query=\"{}\" | results={} | engine={}]\n",
            terms.join(" "),
            chosen.len(),
            found.method
        );
        let lines: Vec<String> = chosen
            .iter()
            .map(|(_, c, at)| format!("- {c} ({})", text::short_date(at)))
            .collect();
        inject.push_str(&lines.join("\n"));
        if settings.agent_feedback {
            if let Some(k) = key {
                inject.push_str(&format!(
                    "\n\n<memory-feedback>\nRate injected memories using the mcp__signet__memory_feedback tool. \
                     Pass session_key \"{k}\" and a ratings map of memory ID to score (-1 to 1). \
                     0=unused, 1=directly helpful, -1=harmful.\nIDs: {}\n</memory-feedback>",
                    ids.join(", ")
                ));
            }
        }
        Ok(PromptInjected {
            inject,
            memory_count: chosen.len(),
            query_terms: Some(terms),
            engine: Some(found.method),
            memory_ids: ids,
            bypassed: false,
        })
    }

    /// Count a prompt; write a periodic checkpoint (off the request's path)
    /// when one is due.
    fn continue_session(&self, caller: &Caller, key: &str, terms: &[String], cleaned: &str) {
        let c = &self.config.settings.hooks.continuity;
        if !c.enabled {
            return;
        }
        // What a checkpoint keeps is taken from the redacted prompt, so a
        // secret split into words never reaches the query list.
        let safe = text::redact(cleaned);
        let safe_terms: Vec<String> = text::prompt_terms(&safe, None)
            .into_iter()
            .filter(|t| t != "redacted" && terms.contains(t))
            .collect();
        let snippet = text::first_chars(&safe, 200).to_string();
        let due =
            self.sessions
                .record_prompt(&caller.scope, key, &safe_terms, snippet, c, self.now());
        if let Some(due) = due {
            let hooks = self.clone();
            let caller = caller.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                if let Err(e) = hooks
                    .write_checkpoint(&caller, &key, "periodic", due, None)
                    .await
                {
                    tracing::warn!(error = %e, "periodic checkpoint not written");
                }
            });
        }
    }

    /// Write a checkpoint of `trigger` from what the session knew.
    async fn write_checkpoint(
        &self,
        caller: &Caller,
        key: &str,
        trigger: &'static str,
        due: Due,
        context: Option<&str>,
    ) -> Result<(), MemoryError> {
        let now = self.now();
        let digest = text::redact(&checkpoint_digest(trigger, &due, context, now));
        let c = &due.continuity;
        let queries: Vec<&String> = c.queries.iter().collect();
        let remembers: Vec<String> = c.remembers.iter().map(|r| text::redact(r)).collect();
        let cp = NewCheckpoint {
            id: uuid::Uuid::new_v4().to_string(),
            session_key: key.to_string(),
            harness: Some(due.harness.clone()),
            project: due.project.clone(),
            project_normalized: due.project.as_deref().map(normalise_project),
            trigger,
            digest,
            prompt_count: i64::from(c.prompts),
            memory_queries: (!queries.is_empty())
                .then(|| serde_json::to_string(&queries).unwrap_or_default()),
            recent_remembers: (!remembers.is_empty())
                .then(|| serde_json::to_string(&remembers).unwrap_or_default()),
            scope: caller.scope.clone(),
        };
        self.session_write(SessionWrite::Checkpoint(Box::new(cp)))
            .await
            .map(|_| ())
    }

    async fn session_write(
        &self,
        op: SessionWrite,
    ) -> Result<Option<sessions::SummaryJob>, MemoryError> {
        self.memories
            .write(|reply| WriteOp::Session {
                op: op.clone(),
                reply,
            })
            .await
    }

    /// POST /api/hooks/session-end.
    pub async fn session_end(
        &self,
        caller: &Caller,
        req: EndRequest,
    ) -> Result<SessionEnded, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        let mut out = SessionEnded {
            memories_saved: 0,
            queued: None,
            job_id: None,
            skipped: None,
            bypassed: false,
        };
        let scope = &caller.scope;
        let mut due = None;
        if let Some(key) = &req.meta.session_key {
            out.bypassed = self.sessions.is_bypassed(scope, key);
            due = self.sessions.end(scope, key);
        }
        if out.bypassed || req.reason.as_deref() == Some("clear") {
            return Ok(out);
        }
        let writable = caller
            .permit(crate::auth::Permission::Remember)
            .and_then(|_| self.memories.check_writable())
            .is_ok();
        if let (Some(key), Some(due), true) = (&req.meta.session_key, due, writable) {
            if due.continuity.prompts > 0 {
                self.write_checkpoint(caller, key, "session_end", due, None)
                    .await?;
            }
        }
        let extraction = &self.config.settings.memory.pipeline_v2.extraction;
        let Some(path) = req.transcript_path.as_deref() else {
            return Ok(out);
        };
        if extraction.provider == "none" || !writable {
            return Ok(out);
        }
        let path = self.transcript_path(path)?;
        let harness = req.meta.harness.clone();
        let raw = tokio::task::spawn_blocking(move || read_tail(&path))
            .await
            .map_err(|e| MemoryError::Unavailable(e.to_string()))?
            .map_err(|e| MemoryError::BadRequest(format!("transcript could not be read: {e}")))?;
        let mut transcript = text::normalise_transcript(&raw, &harness);
        if transcript.chars().count() < text::MIN_TRANSCRIPT_CHARS {
            out.skipped = Some("transcript too short to summarise".into());
            return Ok(out);
        }
        if transcript.chars().count() > text::MAX_TRANSCRIPT_CHARS {
            transcript = format!(
                "{}\n[truncated]",
                text::first_chars(&transcript, text::MAX_TRANSCRIPT_CHARS)
            );
        }
        let id = uuid::Uuid::new_v4().to_string();
        let job = NewSummaryJob {
            id: id.clone(),
            session_key: req.meta.session_key.clone(),
            harness: req.meta.harness.clone(),
            project: req.cwd.clone().or(req.meta.project.clone()),
            agent_id: req.meta.agent_id.clone(),
            transcript,
            scope: caller.scope.clone(),
        };
        self.session_write(SessionWrite::QueueSummary(Box::new(job)))
            .await?;
        out.queued = Some(true);
        out.job_id = Some(id);
        Ok(out)
    }

    /// A transcript path the daemon will read: an existing regular file
    /// with a transcript's extension under the daemon user's home or the
    /// workspace (symlinks resolved), so no caller can make the daemon
    /// read keys, configs or system files.
    fn transcript_path(&self, given: &str) -> Result<PathBuf, MemoryError> {
        // One answer for a missing file and a file out of bounds, so the
        // route tells a remote caller nothing about what exists.
        let refuse = || {
            MemoryError::Forbidden(
                "transcriptPath refused: it must name an existing .jsonl, .json, .txt, .md or \
                 .log file under the workspace or the daemon user's home directory"
                    .into(),
            )
        };
        let transcript_like = |p: &Path| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| TRANSCRIPT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        };
        let path = Path::new(given);
        if !path.is_absolute() || !transcript_like(path) {
            return Err(refuse());
        }
        let real = std::fs::canonicalize(path).map_err(|_| refuse())?;
        let mut roots = Vec::new();
        if let Ok(w) = std::fs::canonicalize(&self.config.workspace) {
            roots.push(w);
        }
        if let Some(h) = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok()) {
            roots.push(h);
        }
        if !transcript_like(&real) || !roots.iter().any(|r| real.starts_with(r)) || !real.is_file()
        {
            return Err(refuse());
        }
        Ok(real)
    }

    /// POST /api/hooks/remember.
    pub async fn remember(
        &self,
        caller: &Caller,
        meta: HookMeta,
        content: String,
        who: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Value, MemoryError> {
        self.memories.admit(caller, Operation::Remember).await?;
        if self.enter(caller, &meta, false, false)? {
            return Ok(serde_json::json!({ "success": true, "memories": [], "bypassed": true }));
        }
        let req = RememberRequest {
            content: Some(content.clone()),
            who: who.or(Some(meta.harness.clone())),
            project: meta.project.clone(),
            source_type: Some("explicit".into()),
            source_id: idempotency_key,
            ..Default::default()
        };
        let r = self.memories.remember(caller, req).await?;
        if let Some(k) = &meta.session_key {
            self.sessions.record_remember(&caller.scope, k, &content);
        }
        Ok(serde_json::json!({ "saved": true, "id": r.id }))
    }

    /// POST /api/hooks/recall.
    pub async fn recall(
        &self,
        caller: &Caller,
        meta: HookMeta,
        query: String,
        limit: i64,
        project: Option<String>,
    ) -> Result<Value, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        if self.enter(caller, &meta, false, false)? {
            return Ok(serde_json::json!({ "memories": [], "count": 0, "bypassed": true }));
        }
        if let Some(k) = &meta.session_key {
            self.sessions.record_query(&caller.scope, k, &query);
        }
        let req = RecallRequest {
            query,
            limit: Some(limit),
            filter: RecallFilter {
                project,
                ..RecallFilter::default()
            },
            vector_text: None,
            vector_wait: None,
        };
        let r = self.memories.recall(caller, req).await?;
        let results: Vec<Value> = r
            .results
            .into_iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id,
                    "content": m.content,
                    "type": m.kind,
                    "importance": m.importance,
                    "tags": m.tags,
                    "created_at": m.created_at,
                })
            })
            .collect();
        Ok(serde_json::json!({ "count": results.len(), "results": results }))
    }

    /// POST /api/hooks/pre-compaction.
    pub async fn pre_compaction(
        &self,
        caller: &Caller,
        meta: HookMeta,
        session_context: Option<String>,
    ) -> Result<Value, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        if self.enter(caller, &meta, false, false)? {
            return Ok(serde_json::json!({ "instructions": "", "bypassed": true }));
        }
        let settings = self.config.settings.hooks.pre_compaction.clone();
        let mut prompt = format!(
            "Pre-compaction memory flush. Store durable memories now.\n\n{}\n\n",
            settings.summary_guidelines
        );
        if settings.include_recent_memories && settings.memory_limit > 0 {
            let filter = RecallFilter {
                scope: caller.scope.clone(),
                ..RecallFilter::default()
            };
            let rows = self
                .memories
                .reads
                .read(move |c| memories::list(c, &filter, 200, 0))
                .await?;
            let now = self.now();
            let mut scored: Vec<(f64, MemoryRecord)> = rows
                .into_iter()
                .map(|m| {
                    let age = age_days(&m.created_at, now);
                    (0.1 * m.importance + 0.9 / (1.0 + age), m)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            if !scored.is_empty() {
                prompt.push_str("\nRecent memories for reference:\n");
                for (_, m) in scored.into_iter().take(settings.memory_limit) {
                    prompt.push_str(&format!("- {}\n", m.content));
                }
            }
        }
        let writable = caller.permit(crate::auth::Permission::Remember).is_ok()
            && self.memories.check_writable().is_ok();
        if let (Some(key), true) = (&meta.session_key, writable) {
            if let Some(due) = self.sessions.snapshot(&caller.scope, key) {
                self.write_checkpoint(
                    caller,
                    key,
                    "pre_compaction",
                    due,
                    session_context.as_deref(),
                )
                .await?;
            }
        }
        Ok(serde_json::to_value(PreCompacted {
            summary_prompt: prompt,
            guidelines: settings.summary_guidelines,
        })
        .unwrap_or_default())
    }

    /// POST /api/hooks/compaction-complete: the harness's summary becomes a
    /// `session_summary` memory; the prompt repeat window starts over.
    pub async fn compaction_complete(
        &self,
        caller: &Caller,
        meta: HookMeta,
        summary: String,
    ) -> Result<Value, MemoryError> {
        self.memories.admit(caller, Operation::Remember).await?;
        if self.enter(caller, &meta, false, false)? {
            return Ok(serde_json::json!({ "success": true, "bypassed": true }));
        }
        let req = RememberRequest {
            content: Some(summary),
            kind: Some("session_summary".into()),
            importance: Some(0.8),
            tags: Some(super::requests::TagsInput::List(vec![
                "session".into(),
                "summary".into(),
                meta.harness.clone(),
            ])),
            who: Some("system".into()),
            project: meta.project.clone(),
            source_type: Some(meta.harness.clone()),
            ..Default::default()
        };
        let r = self.memories.remember(caller, req).await?;
        if let Some(k) = &meta.session_key {
            self.sessions.reset_window(&caller.scope, k);
        }
        Ok(serde_json::json!({ "success": true, "memoryId": r.id }))
    }

    /// GET /api/sessions.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<SessionInfo>, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        Ok(self.sessions.list(&caller.scope, self.now()))
    }

    /// GET /api/sessions/:key.
    pub async fn get(&self, caller: &Caller, key: &str) -> Result<SessionInfo, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        self.sessions
            .get(&caller.scope, key, self.now())
            .ok_or_else(|| MemoryError::NoSuch("Session not found".into()))
    }

    /// POST /api/sessions/:key/bypass: any session the caller can see,
    /// claimed or not (Signet's only works on claimed ones).
    pub async fn bypass(
        &self,
        caller: &Caller,
        key: &str,
        enabled: bool,
    ) -> Result<Value, MemoryError> {
        self.memories.admit(caller, Operation::Remember).await?;
        let s = self
            .sessions
            .set_bypass(&caller.scope, key, enabled, self.now())
            .ok_or_else(|| MemoryError::NoSuch("Session not found".into()))?;
        Ok(serde_json::json!({ "key": s.key, "bypassed": s.bypassed }))
    }

    /// GET /api/sessions/summaries.
    pub async fn summaries(
        &self,
        caller: &Caller,
        project: Option<String>,
        depth: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Summary>, i64), MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        if !(0..=200).contains(&limit) || offset < 0 {
            return Err(MemoryError::BadRequest(
                "limit must be 0..200 and offset at least 0".into(),
            ));
        }
        let scope = caller.scope.clone();
        Ok(self
            .memories
            .reads
            .read(move |c| sessions::summaries(c, project.as_deref(), depth, &scope, limit, offset))
            .await?)
    }

    /// GET /api/checkpoints?project=P&limit=N (newest first, at most 100).
    pub async fn checkpoints_of_project(
        &self,
        caller: &Caller,
        project: &str,
        limit: i64,
    ) -> Result<Vec<Checkpoint>, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        let p = normalise_project(project);
        let scope = caller.scope.clone();
        let limit = limit.clamp(1, 100);
        let rows = self
            .memories
            .reads
            .read(move |c| sessions::checkpoints_of_project(c, &p, &scope, None, limit))
            .await?;
        Ok(rows.into_iter().map(redact_checkpoint).collect())
    }

    /// GET /api/checkpoints/:sessionKey (every checkpoint, newest first).
    pub async fn checkpoints_of_session(
        &self,
        caller: &Caller,
        key: String,
    ) -> Result<Vec<Checkpoint>, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        let scope = caller.scope.clone();
        let rows = self
            .memories
            .reads
            .read(move |c| {
                sessions::checkpoints_of_session(c, &key, &scope, sessions::CHECKPOINTS_PER_SESSION)
            })
            .await?;
        Ok(rows.into_iter().map(redact_checkpoint).collect())
    }
}

/// The prompt that turns a session transcript into its summary.
pub fn summary_prompt(transcript: &str) -> String {
    format!(
        "You are summarising a coding-agent session for its long-term memory.\n\
         Write a concise first-person summary (at most 15 sentences) of: decisions made and why; \
         what was learned about the user, the project or the codebase; preferences expressed; \
         open threads and next steps; errors hit and how they were resolved. \
         Plain text, no preamble.\n\nTranscript:\n{transcript}"
    )
}

/// Longest summary kept (characters).
const MAX_SUMMARY_CHARS: usize = 4_000;

/// Summarise the oldest queued session transcript with the extraction
/// provider (the pipeline calls this): the summary becomes a
/// `session_summary` memory in the writer's scope and a row of
/// `GET /api/sessions/summaries`; a failure is retried up to
/// `max_attempts`. Returns whether a job was taken.
pub async fn summarise_next(
    memories: &MemoryService,
    llm: &crate::extract::Llm,
    now: DateTime<Utc>,
    lease_timeout: chrono::Duration,
    max_attempts: i64,
) -> Result<bool, MemoryError> {
    let write = |op: SessionWrite| {
        memories.write(move |reply| WriteOp::Session {
            op: op.clone(),
            reply,
        })
    };
    let stale = crate::store::to_iso(now - lease_timeout);
    let Some(job) = write(SessionWrite::LeaseSummary { stale }).await? else {
        return Ok(false);
    };
    match summarise(memories, llm, &job, now).await {
        Ok(summary) => {
            write(SessionWrite::CompleteSummary(Box::new(summary))).await?;
        }
        Err(error) => {
            tracing::warn!(job = %job.id, %error, "session summary failed");
            write(SessionWrite::FailSummary {
                id: job.id.clone(),
                error,
                max_attempts,
            })
            .await?;
        }
    }
    Ok(true)
}

async fn summarise(
    memories: &MemoryService,
    llm: &crate::extract::Llm,
    job: &sessions::SummaryJob,
    now: DateTime<Utc>,
) -> Result<sessions::NewSummary, String> {
    let reply = llm
        .complete(&summary_prompt(&job.transcript))
        .await
        .map_err(|e| e.to_string())?;
    let text = crate::extract::parse::strip_think(&reply)
        .trim()
        .to_string();
    if text.is_empty() {
        return Err("the provider returned an empty summary".into());
    }
    let text = text::first_chars(&text, MAX_SUMMARY_CHARS).to_string();
    let req = RememberRequest {
        content: Some(text.clone()),
        kind: Some("session_summary".into()),
        importance: Some(0.8),
        tags: Some(super::requests::TagsInput::List(vec![
            "session".into(),
            "summary".into(),
            job.harness.clone(),
        ])),
        who: Some("system".into()),
        project: job.scope.project.clone().or_else(|| job.project.clone()),
        agent: job.scope.agent.clone(),
        user: job.scope.user.clone(),
        // A retried job finds the memory its earlier attempt stored.
        source_type: Some("session-summary".into()),
        source_id: Some(job.id.clone()),
        ..Default::default()
    };
    memories
        .remember(&Caller::daemon("pipeline", "pipeline"), req)
        .await
        .map_err(|e| e.to_string())?;
    Ok(sessions::NewSummary {
        id: uuid::Uuid::new_v4().to_string(),
        job_id: job.id.clone(),
        content: text,
        earliest_at: job.created_at.clone(),
        latest_at: crate::store::to_iso(now),
    })
}

/// Served checkpoints are redacted again (rules may have grown since).
fn redact_checkpoint(mut c: Checkpoint) -> Checkpoint {
    c.digest = text::redact(&c.digest);
    c.recent_remembers = c.recent_remembers.map(|r| text::redact(&r));
    c
}

/// A project path as checkpoints compare it: its real path when it exists.
pub fn normalise_project(p: &str) -> String {
    std::fs::canonicalize(p)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.trim_end_matches('/').to_string())
}

fn age_days(created_at: &str, now: DateTime<Utc>) -> f64 {
    DateTime::parse_from_rfc3339(created_at)
        .map(|t| ((now - t.with_timezone(&Utc)).num_seconds().max(0) as f64) / 86_400.0)
        .unwrap_or(0.0)
}

/// session-start's memories: `importance·0.95^ageDays` (pinned: 1), kept
/// above 0.2 or pinned; the request's project first, then by score; at most
/// `pool`; taken in order while the content fits `budget` characters.
fn choose_start_memories(
    rows: Vec<MemoryRecord>,
    project: Option<&str>,
    now: DateTime<Utc>,
    pool: usize,
    budget: usize,
) -> Vec<MemoryRecord> {
    let mut scored: Vec<(bool, f64, MemoryRecord)> = rows
        .into_iter()
        .filter_map(|m| {
            let eff = if m.pinned {
                1.0
            } else {
                m.importance * 0.95_f64.powf(age_days(&m.created_at, now))
            };
            (m.pinned || eff > 0.2)
                .then(|| (project.is_some() && m.project.as_deref() == project, eff, m))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    scored.truncate(pool);
    let mut used = 0;
    let mut out = Vec::new();
    for (_, _, m) in scored {
        let len = text::utf16_len(&m.content);
        if used + len > budget {
            break;
        }
        used += len;
        out.push(m);
    }
    out
}

/// The identity files of a workspace, capped and trimmed.
#[derive(Debug, Default)]
struct IdentityFiles {
    /// (file name, capped text) of AGENTS/SOUL/IDENTITY/USER.md present.
    identity: Vec<(&'static str, String)>,
    /// IDENTITY.md uncapped (for the name fallback), even when identity
    /// files are not injected.
    identity_raw: Option<String>,
    memory_md: Option<String>,
}

fn read_identity(workspace: &Path, include: bool) -> IdentityFiles {
    let read = |name: &str| {
        std::fs::read_to_string(workspace.join(name))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut out = IdentityFiles {
        identity_raw: read("IDENTITY.md"),
        ..IdentityFiles::default()
    };
    if include {
        for (name, _, cap) in IDENTITY_FILES {
            if let Some(t) = read(name) {
                out.identity.push((name, text::cap_utf16(&t, *cap)));
            }
        }
    }
    out.memory_md = read(MEMORY_FILE.0).map(|t| text::cap_utf16(&t, MEMORY_FILE.1));
    out
}

/// The last [`MAX_TRANSCRIPT_BYTES`] of a file, from a line start.
fn read_tail(path: &Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(MAX_TRANSCRIPT_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.take(MAX_TRANSCRIPT_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(if start > 0 {
        text.split_once('\n')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    } else {
        text
    })
}

/// A checkpoint digest in Signet's layout (§2.2).
fn checkpoint_digest(
    trigger: &str,
    due: &Due,
    context: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let c = &due.continuity;
    let project = due.project.as_deref().unwrap_or("unknown");
    let duration = text::duration_label(now - due.started_at);
    let mut s = match trigger {
        "pre_compaction" => format!(
            "## Pre-Compaction Checkpoint\nProject: {project}\nDuration: {duration} | Prompts: {}",
            c.prompts
        ),
        "session_end" => format!(
            "## Session End Checkpoint\nProject: {project}\nDuration: {duration} | Total Prompts: {}",
            c.prompts
        ),
        _ => format!(
            "## Session Checkpoint\nProject: {project}\nPrompts: {} | Duration: {duration}",
            c.prompts
        ),
    };
    if let Some(ctx) = context.map(str::trim).filter(|c| !c.is_empty()) {
        s.push_str(&format!(
            "\n\n### Session Context\n{}",
            text::first_chars(ctx, 1_000)
        ));
    }
    if !c.snippets.is_empty() {
        s.push_str("\n\n### Recent Prompts");
        for p in &c.snippets {
            s.push_str(&format!("\n- {}", p.replace('\n', " ")));
        }
    }
    if !c.queries.is_empty() || !c.remembers.is_empty() {
        s.push_str(if trigger == "periodic" {
            "\n\n### Memory Activity Since Last Checkpoint"
        } else {
            "\n\n### Memory Activity"
        });
        if !c.queries.is_empty() {
            let q: Vec<&str> = c.queries.iter().map(String::as_str).collect();
            s.push_str(&format!("\nQueries: {}", q.join(", ")));
        }
        if !c.remembers.is_empty() {
            let r: Vec<String> = c.remembers.iter().map(|r| r.replace('\n', " ")).collect();
            s.push_str(&format!("\nRemembered: {}", r.join("; ")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, content: &str, importance: f64, pinned: bool, age_days: i64) -> MemoryRecord {
        let created = crate::store::to_iso(Utc::now() - chrono::Duration::days(age_days));
        MemoryRecord {
            id: id.into(),
            content: content.into(),
            kind: "fact".into(),
            importance,
            tags: None,
            pinned,
            who: None,
            project: None,
            agent: None,
            user: None,
            source_type: None,
            source_id: None,
            content_hash: String::new(),
            version: 1,
            is_deleted: false,
            deleted_at: None,
            access_count: 0,
            last_accessed: None,
            created_at: created.clone(),
            updated_at: created,
            updated_by: None,
            embedding_model: None,
            extraction_status: "none".into(),
        }
    }

    #[test]
    fn start_memories_are_scored_filtered_and_budgeted() {
        let rows = vec![
            rec("old", "old and faded", 0.8, false, 60),
            rec("pin", "pinned rule", 0.1, true, 400),
            rec("new", "fresh fact", 0.5, false, 0),
            rec("big", &"x".repeat(1980), 0.9, false, 1),
        ];
        let out = choose_start_memories(rows, None, Utc::now(), 100, 2000);
        let ids: Vec<&str> = out.iter().map(|m| m.id.as_str()).collect();
        // 0.8·0.95^60 ≈ 0.04 is dropped; pinned scores 1, then 0.855, then
        // 0.5; "fresh fact" would pass 2000 chars, and selection stops at
        // the first row that does not fit.
        assert_eq!(ids, vec!["pin", "big"]);
        // The request's project comes first whatever its score.
        let mut rows = vec![
            rec("a", "alpha", 0.9, false, 0),
            rec("b", "beta", 0.3, false, 0),
        ];
        rows[1].project = Some("/repo".into());
        let out = choose_start_memories(rows, Some("/repo"), Utc::now(), 100, 2000);
        assert_eq!(out[0].id, "b");
    }

    #[test]
    fn digests_follow_signets_layout() {
        let mut c = state::Continuity {
            prompts: 3,
            ..Default::default()
        };
        c.snippets.push_back("fix the login bug".into());
        c.queries.push_back("login".into());
        c.remembers.push_back("cookie ttl is 1h".into());
        let due = Due {
            harness: "claude-code".into(),
            project: Some("/repo".into()),
            started_at: Utc::now() - chrono::Duration::minutes(75),
            continuity: c,
        };
        let d = checkpoint_digest("session_end", &due, None, Utc::now());
        assert!(d.starts_with(
            "## Session End Checkpoint\nProject: /repo\nDuration: 1h 15m | Total Prompts: 3"
        ));
        assert!(d.contains("\n\n### Recent Prompts\n- fix the login bug"));
        assert!(d.contains("\n\n### Memory Activity\nQueries: login\nRemembered: cookie ttl is 1h"));
        let p = checkpoint_digest("periodic", &due, None, Utc::now());
        assert!(p.contains("Prompts: 3 | Duration: 1h 15m"));
        assert!(p.contains("### Memory Activity Since Last Checkpoint"));
    }
}
