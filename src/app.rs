//! Build everything and run it: workspace, actors, routes, server, and the
//! ordered shutdown.
//!
//! [`App::start`] takes an already-bound listener (tests bind port 0) and a
//! shutdown future; [`App::wait`] returns once the server stopped accepting,
//! in-flight requests finished, the store writer drained and the WAL was
//! checkpointed.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::actors::rate_limit::LedgerArgs;
use crate::actors::retention::SweeperArgs;
use crate::actors::sse::SseArgs;
use crate::actors::store_writer::JobPolicy;
use crate::actors::store_writer::{WriterArgs, WriterStats};
use crate::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::Registry;
use crate::auth::locality::TrustedProxies;
use crate::auth::secret;
use crate::config::{AuthMode, Config};
use crate::embed::EmbedService;
use crate::http;
use crate::http::auth::AuthState;
use crate::memory::ops::PipelineStats;
use crate::memory::MemoryService;
use crate::pipeline::{Clock, PipelineArgs};
use crate::store::access::AccessTracker;
use crate::store::checkpoint::CheckpointStats;
use crate::store::lock::WorkspaceLock;
use crate::store::vec::VectorIndex;
use crate::store::Generation;
use crate::store::{self, ReadPool};

/// Fail closed: refuse configurations that would expose the workspace.
pub fn check_auth(config: &Config) -> anyhow::Result<()> {
    if config.settings.auth.mode == AuthMode::Local && !config.binds_loopback() {
        bail!(
            "refusing to bind {} with auth.mode: local (anyone on the network could read and write every memory); \
             bind 127.0.0.1 (SIGNET_BIND) or set auth.mode: team in {}",
            config.bind,
            config.workspace.join("agent.yaml").display()
        );
    }
    TrustedProxies::parse(&config.settings.auth.trusted_proxies).map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

/// The edge's auth state: the secret (created on the first non-local
/// start) and the persisted revocations.
pub async fn auth_state(config: &Config, engine: &Engine) -> anyhow::Result<AuthState> {
    let a = &config.settings.auth;
    let secret = match a.mode {
        AuthMode::Local => None,
        AuthMode::Team | AuthMode::Hybrid => Some(secret::load_or_create(&config.workspace)?),
    };
    let revocations = engine
        .memories
        .revocations()
        .await
        .context("cannot load token revocations")?;
    Ok(AuthState {
        mode: a.mode,
        settings: a.clone(),
        secret: secret.map(Arc::new),
        revocations: Arc::new(revocations),
        trusted: TrustedProxies::parse(&a.trusted_proxies).map_err(|e| anyhow::anyhow!(e))?,
    })
}

/// Create the workspace layout.
pub fn prepare_workspace(config: &Config) -> anyhow::Result<()> {
    for dir in [
        config.workspace.join("memory"),
        config.daemon_dir(),
        config.daemon_dir().join("logs"),
    ] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// The actors and operations without any HTTP front: what the daemon, the
/// benches and future fronts (CLI, MCP) share.
pub struct Engine {
    pub config: Arc<Config>,
    /// Actor refs, for supervision tests and tooling.
    pub registry: Registry,
    pub memories: MemoryService,
    /// Group-commit counters.
    pub writer_stats: Arc<WriterStats>,
    /// Supervisor restarts so far.
    pub restarts: Arc<AtomicU64>,
    /// Events handed to SSE subscribers so far.
    pub events_published: Arc<AtomicU64>,
    /// Webhook delivery tasks and their counters.
    pub webhooks: crate::webhooks::Webhooks,
    /// Pipeline counters.
    pub pipeline: Arc<PipelineStats>,
    /// WAL checkpoint counters.
    pub checkpoints: Arc<CheckpointStats>,
    /// The store's read pool, the embedding service and the vector index
    /// (the domain layer's parts, for benches and tools built on the
    /// engine; the fronts reach them only through the domain).
    pub reads: ReadPool,
    pub embed: Arc<EmbedService>,
    pub index: Arc<VectorIndex>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: Option<tokio::task::JoinHandle<()>>,
}

impl Engine {
    /// Prepare the workspace, open the store and start the supervisor.
    pub async fn start(config: Arc<Config>) -> anyhow::Result<Engine> {
        prepare_workspace(&config)?;
        let registry = Registry::default();
        let checkpoints = Arc::new(CheckpointStats::default());
        let access = Arc::new(AccessTracker::default());
        let writer_stats = Arc::new(WriterStats::default());
        let restarts = Arc::new(AtomicU64::new(0));
        let generation = Arc::new(Generation::default());
        let events_published = Arc::new(AtomicU64::new(0));
        let s = &config.settings.server;
        let e = &config.settings.embedding;
        let p = &config.settings.memory.pipeline_v2;
        let index = Arc::new(VectorIndex::new(e.dimensions));
        let wake = Arc::new(tokio::sync::Notify::new());
        let llm = crate::extract::Llm::from_settings(&p.extraction)
            .map_err(|e| anyhow::anyhow!("memory.pipelineV2.extraction: {e}"))?
            .map(Arc::new);
        let jobs = JobPolicy {
            embed_on_change: e.provider != "none",
            extract_on_write: p.enabled && llm.is_some(),
            max_attempts: p.max_attempts,
        };
        let args = SupervisorArgs {
            registry: registry.clone(),
            writer: WriterArgs {
                db_path: config.db_path(),
                vector_dims: config.settings.embedding.dimensions,
                max_batch: s.max_batch,
                max_batch_bytes: s.max_batch_bytes,
                synchronous: s.synchronous,
                access_flush: Duration::from_millis(s.access_flush_ms.max(10)),
                access: access.clone(),
                stats: writer_stats.clone(),
                checkpoint_every: Duration::from_millis(s.checkpoint_ms.max(10)),
                checkpoints: checkpoints.clone(),
                generation: generation.clone(),
                registry: registry.clone(),
                index: index.clone(),
                jobs,
                wake: wake.clone(),
                clock: config.clock.clone(),
                inbox: Default::default(),
            },
            sweeper: SweeperArgs {
                registry: registry.clone(),
                settings: config.settings.retention.clone(),
                writer_timeout: Duration::from_millis(s.actor_timeout_ms),
                frozen: config.settings.memory.pipeline_v2.mutations_frozen,
                clock: config.clock.clone(),
            },
            sse: SseArgs {
                ring_size: s.sse_ring_size.max(1),
                channel_size: s.sse_client_buffer.max(1),
                coalesce: Duration::from_millis(s.sse_coalesce_ms.min(1_000)),
                published: events_published.clone(),
            },
            ledger: LedgerArgs {
                limits: config.settings.auth.rate_limits.clone(),
                evict_every: Duration::from_secs(60),
            },
            restarts: restarts.clone(),
        };
        // Open (and migrate) the store once here, so a store that cannot
        // open stops the daemon with its path and cause instead of an actor
        // startup failure.
        let db = config.db_path();
        let dims = config.settings.embedding.dimensions;
        let opened = tokio::task::spawn_blocking({
            let db = db.clone();
            move || store::open_writer(&db, dims).map(drop)
        })
        .await
        .context("cannot open the store")?;
        if let Err(e) = opened {
            let cause = e.to_string();
            let cause = cause
                .strip_suffix(&format!(": {}", db.display()))
                .unwrap_or(&cause);
            bail!("cannot open the store {}: {cause}", db.display());
        }
        let (supervisor, sup_handle) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the store: {e}"))?;
        let reads = ReadPool::new(&config.db_path(), s.read_pool_size);
        // The vector index loads while the daemon serves (~8 s at a million
        // vectors); until it is complete the vector leg asks vec0. Without
        // a provider no query is embedded, so it is not loaded at all (a
        // "similar memories" search, which uses a stored vector, then
        // stays on vec0).
        index.begin_loading();
        if e.provider != "none" {
            let index = index.clone();
            let reads = reads.clone();
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                let filled = reads.read(move |c| index.fill(c)).await;
                // The load's transient buffers go back to the system now,
                // not at the next minute's trim.
                trim_heap().await;
                match filled {
                    Ok(n) => tracing::info!(
                        vectors = n,
                        ms = t.elapsed().as_millis() as u64,
                        "vector index loaded"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load the vector index; the vector leg stays on vec0")
                    }
                }
            });
        }
        let embed = Arc::new(EmbedService::new(e));
        embed.start(&config.workspace);
        let webhooks = crate::webhooks::start(registry.clone(), config.settings.webhooks.clone());
        let memories = MemoryService::new(
            config.clone(),
            registry.clone(),
            reads.clone(),
            access,
            generation,
            embed.clone(),
            index.clone(),
        );
        let pipeline = Arc::new(PipelineStats::default());
        let pargs = PipelineArgs {
            config: config.clone(),
            memories: memories.clone(),
            embed: embed.clone(),
            llm,
            wake,
            stats: pipeline.clone(),
            clock: Clock::following(config.clock.clone()),
            writer: writer_stats.clone(),
        };
        ractor::call_t!(
            supervisor,
            |r| SupervisorMsg::StartPipeline(crate::pipeline::spawner(pargs.clone()), r),
            10_000
        )
        .map_err(|e| anyhow::anyhow!("cannot start the pipeline: {e}"))?;
        Ok(Engine {
            reads,
            embed,
            index,
            checkpoints,
            webhooks,
            pipeline,
            memories,
            config,
            registry,
            writer_stats,
            restarts,
            events_published,
            supervisor,
            supervisor_done: Some(sup_handle),
        })
    }

    /// Resolves when the supervisor stopped (it gave up on a child, or the
    /// engine shut down). Can be taken once.
    pub fn take_stopped(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.supervisor_done.take()
    }

    /// Drain the store writer, checkpoint the WAL and stop the actors.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        drop(self.webhooks);
        let res = ractor::call_t!(self.supervisor, SupervisorMsg::Shutdown, 60_000);
        self.supervisor.stop(None);
        res.map_err(|e| anyhow::anyhow!("store shutdown: {e}"))
    }
}

/// A running daemon.
pub struct App {
    /// The address the server listens on.
    pub addr: std::net::SocketAddr,
    /// Actor refs, for supervision tests and tooling.
    pub registry: Registry,
    /// Group-commit counters.
    pub writer_stats: Arc<WriterStats>,
    /// Supervisor restarts so far.
    pub restarts: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
    /// True once shutdown began.
    stopping: watch::Receiver<bool>,
    engine: Engine,
    pid_file: std::path::PathBuf,
    /// Held until the store is closed.
    lock: WorkspaceLock,
}

impl App {
    /// Start the actors and serve on `listener` until `shutdown` resolves
    /// (or the supervisor gives up).
    pub async fn start(
        config: Config,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<App> {
        check_auth(&config)?;
        let config = Arc::new(config);
        // One daemon per workspace, decided before the store opens.
        let lock = WorkspaceLock::acquire(&config.workspace, &config.daemon_dir())?;
        let mut engine = Engine::start(config.clone()).await?;
        let addr = listener.local_addr()?;
        let pid_file = config.daemon_dir().join("pid");
        std::fs::write(&pid_file, std::process::id().to_string())
            .with_context(|| format!("cannot write {}", pid_file.display()))?;

        let auth = Arc::new(auth_state(&config, &engine).await?);
        // Stop serving on the caller's signal or when the supervisor dies.
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let tokens = crate::memory::tokens::Tokens::new(
            engine.memories.clone(),
            auth.settings.clone(),
            auth.secret.clone(),
            auth.revocations.clone(),
        );
        let telemetry = Arc::new(crate::telemetry::Telemetry::default());
        let sse_clients = Arc::new(AtomicU64::new(0));
        let ops = crate::memory::ops::Ops::new(crate::memory::ops::OpsParts {
            memories: engine.memories.clone(),
            config: config.clone(),
            registry: engine.registry.clone(),
            writer_stats: engine.writer_stats.clone(),
            checkpoints: engine.checkpoints.clone(),
            restarts: engine.restarts.clone(),
            pipeline: engine.pipeline.clone(),
            telemetry: telemetry.clone(),
            sse_clients: sse_clients.clone(),
            events_published: engine.events_published.clone(),
            port: addr.port(),
        });
        let hooks = crate::memory::hooks::Hooks::new(engine.memories.clone(), config.clone());
        let state = Arc::new(crate::http::AppContext {
            shutdown: stop_rx.clone(),
            tokens,
            hooks,
            auth,
            edge: Arc::new(crate::http::edge::EdgePolicy::new(&config)),
            memories: engine.memories.clone(),
            registry: engine.registry.clone(),
            ops,
            sse_clients,
            telemetry,
            pipeline_status: watch::channel(None).0,
            config: config.clone(),
        });

        tokio::spawn(crate::http::pipeline::publish_status(state.clone()));
        tokio::spawn(return_freed_memory(stop_rx.clone()));
        let stop_on_signal = stop_tx.clone();
        let stop_rx_for_app = stop_rx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_on_signal.send(true);
        });
        if let Some(done) = engine.take_stopped() {
            tokio::spawn(async move {
                let _ = done.await;
                let _ = stop_tx.send(true);
            });
        }
        let server = warp::serve(http::routes(state))
            .incoming(listener)
            .graceful(async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            });
        let server = tokio::spawn(server.run());
        tracing::info!(%addr, workspace = %config.workspace.display(), "signet listening");
        Ok(App {
            addr,
            registry: engine.registry.clone(),
            writer_stats: engine.writer_stats.clone(),
            restarts: engine.restarts.clone(),
            server,
            stopping: stop_rx_for_app,
            engine,
            pid_file,
            lock,
        })
    }

    /// Wait for the server to stop, then drain the writer and checkpoint.
    pub async fn wait(self) -> anyhow::Result<()> {
        // Streams end on the stop signal; a request that still has not
        // finished after the grace period is cut off.
        let mut server = self.server;
        let finished = tokio::select! {
            r = &mut server => r.is_ok(),
            _ = wait_then(self.stopping.clone(), SHUTDOWN_GRACE) => false,
        };
        if !finished {
            tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "in-flight requests cut off at shutdown"
            );
            server.abort();
        }
        tracing::info!("server stopped; draining the store writer");
        let res = self.engine.shutdown().await;
        // Only the pid this process wrote is removed.
        let ours = std::fs::read_to_string(&self.pid_file)
            .is_ok_and(|p| p.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.pid_file);
        }
        drop(self.lock);
        res?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Give memory freed by the allocator back to the system once a minute:
/// glibc keeps freed pages of its arenas (tens of MB after a burst of
/// requests), which reads as a leak in RSS.
async fn return_freed_memory(mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        trim_heap().await;
    }
}

/// Hand the allocator's free pages back to the system (glibc only).
async fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only releases free memory of the
        // allocator's own arenas; it is safe to call at any time.
        unsafe { libc::malloc_trim(0) }
    })
    .await;
}

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Resolves `grace` after the stop signal.
async fn wait_then(mut stopping: watch::Receiver<bool>, grace: Duration) {
    let _ = stopping.wait_for(|s| *s).await;
    tokio::time::sleep(grace).await;
}

/// Bind the configured address.
pub async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let host = if config.bind == "localhost" {
        "127.0.0.1"
    } else {
        config.bind.as_str()
    };
    let addr = format!("{host}:{}", config.port);
    TcpListener::bind(&addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another daemon running? set SIGNET_PORT to use another port)")
    })
}
