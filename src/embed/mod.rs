//! Embedding providers behind one trait, and the service that owns the
//! active one.
//!
//! - [`native`]: all-MiniLM-L6-v2 (or another BERT sentence model) run
//!   in-process on the CPU with candle; the default, no network needed once
//!   the model files are in the workspace ([`model_files`]).
//! - [`remote`]: `ollama` (`POST {endpoint}/api/embeddings`) and `openai`
//!   (`POST {endpoint}/v1/embeddings`, batched).
//! - `none`: no provider; recall stays keyword-only.
//!
//! [`EmbedService`] is what the rest of the daemon talks to: it knows
//! whether a provider is ready, checks every vector's dimension against the
//! database's, keeps the success rate of the last 100 calls (diagnostics),
//! caches query embeddings (LRU) and opens a short circuit after a failure
//! so a dead provider costs recall nothing.

pub mod model_files;
pub mod native;
pub mod remote;

use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Serialize;

use crate::config::EmbeddingSettings;

/// Why an embedding call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding provider unavailable: {0}")]
    Unavailable(String),
    #[error("embedding provider failed: {0}")]
    Provider(String),
    #[error("embedding provider returned {got} dimensions, the database holds {want}")]
    Dimensions { got: usize, want: usize },
    #[error("embedding provider timed out after {0} ms")]
    Timeout(u64),
}

/// Which queue a call belongs to: a recall waiting on it, or the
/// background backfill (which the native provider runs at low priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Query,
    Background,
}

/// A boxed future, so the trait stays object-safe.
pub type EmbedFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Vec<f32>>, EmbedError>> + Send + 'a>>;

/// One embedding provider.
pub trait Embedder: Send + Sync {
    /// Provider name as configured (`native`, `ollama`, `openai`).
    fn provider(&self) -> &'static str;
    /// Embed `texts`, one vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String], lane: Lane) -> EmbedFuture<'a>;
}

/// Where the provider stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum ProviderState {
    /// `embedding.provider: none`.
    Disabled,
    /// The model is being found, fetched or loaded.
    Loading,
    Ready,
    /// It cannot be used (the reason is in `error`).
    Unavailable,
}

/// How long recall skips the vector leg after a failed call.
const CIRCUIT_OPEN: Duration = Duration::from_secs(5);
/// Outcomes kept for the success rate.
const OUTCOMES: usize = 100;

/// The active provider, its health and the query cache.
pub struct EmbedService {
    settings: EmbeddingSettings,
    /// The database's vector dimension.
    dims: usize,
    provider: RwLock<Option<Arc<dyn Embedder>>>,
    state: RwLock<(ProviderState, Option<String>)>,
    outcomes: Mutex<VecDeque<bool>>,
    failures: AtomicU64,
    successes: AtomicU64,
    /// Until when recall skips the provider (after a failure).
    open_until: Mutex<Option<Instant>>,
    cache: Option<Mutex<LruCache<String, Arc<Vec<f32>>>>>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Wakes the pipeline when the provider becomes ready.
    pub ready: tokio::sync::Notify,
}

/// `/api/embeddings/status` and the provider diagnostics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    pub provider: String,
    pub model: String,
    pub dimensions: usize,
    pub state: ProviderState,
    pub available: bool,
    pub error: Option<String>,
    pub calls: u64,
    pub failures: u64,
    /// Over the last 100 calls; `None` before the first.
    pub success_rate: Option<f64>,
    pub query_cache: QueryCacheStatus,
}

/// Query-embedding cache counters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCacheStatus {
    pub entries: usize,
    pub capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl EmbedService {
    /// A service for `settings` with no provider loaded yet.
    pub fn new(settings: &EmbeddingSettings) -> Self {
        let initial = if settings.provider == "none" {
            ProviderState::Disabled
        } else {
            ProviderState::Loading
        };
        EmbedService {
            dims: settings.dimensions,
            provider: RwLock::new(None),
            state: RwLock::new((initial, None)),
            outcomes: Mutex::new(VecDeque::with_capacity(OUTCOMES)),
            failures: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            open_until: Mutex::new(None),
            cache: NonZeroUsize::new(settings.query_cache_entries)
                .map(|c| Mutex::new(LruCache::new(c))),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            ready: tokio::sync::Notify::new(),
            settings: settings.clone(),
        }
    }

    /// A service with `provider` already installed (tests, benches).
    pub fn with_provider(settings: &EmbeddingSettings, provider: Arc<dyn Embedder>) -> Self {
        let s = EmbedService::new(settings);
        s.install(provider);
        s
    }

    /// Start the configured provider. Remote providers are ready at once
    /// (their health shows in the call outcomes); the native one finds,
    /// fetches if allowed, and loads its model on a blocking thread.
    pub fn start(self: &Arc<Self>, workspace: &std::path::Path) {
        match self.settings.provider.as_str() {
            "none" => {}
            "ollama" | "openai" => match remote::RemoteEmbedder::new(&self.settings) {
                Ok(p) => self.install(Arc::new(p)),
                Err(e) => self.mark_unavailable(e.to_string()),
            },
            _ => {
                let me = self.clone();
                let workspace = workspace.to_path_buf();
                tokio::spawn(async move {
                    let settings = me.settings.clone();
                    // Until a model loads: retry (files may be installed, or
                    // the network come back), 30 s doubling to 10 min.
                    let mut wait = Duration::from_secs(30);
                    loop {
                        match native::NativeEmbedder::find_or_fetch(&settings, &workspace).await {
                            Ok(p) if p.dims() != me.dims => {
                                me.mark_unavailable(format!(
                                    "model {} produces {} dimensions, embedding.dimensions is {}",
                                    settings.model,
                                    p.dims(),
                                    me.dims
                                ));
                                return;
                            }
                            Ok(p) => {
                                tracing::info!(model = %settings.model, "native embedding model loaded");
                                me.install(Arc::new(p));
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, retry_s = wait.as_secs(), "native embedding model unavailable; recall is keyword-only");
                                me.mark_unavailable(e.to_string());
                            }
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(600));
                    }
                });
            }
        }
    }

    /// Make `provider` the active one.
    pub fn install(&self, provider: Arc<dyn Embedder>) {
        if let Ok(mut p) = self.provider.write() {
            *p = Some(provider);
        }
        if let Ok(mut s) = self.state.write() {
            *s = (ProviderState::Ready, None);
        }
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    fn mark_unavailable(&self, error: String) {
        if let Ok(mut s) = self.state.write() {
            *s = (ProviderState::Unavailable, Some(error));
        }
    }

    /// The database's vector dimension.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The configured model name (recorded as `embedding_model`).
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// The backfill batch size.
    pub fn batch_size(&self) -> usize {
        self.settings.batch_size
    }

    /// Longest a remember waits for its vector.
    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.wait_timeout_ms)
    }

    fn active(&self) -> Option<Arc<dyn Embedder>> {
        self.provider.read().ok().and_then(|p| p.clone())
    }

    /// A provider is installed (it may still be failing).
    pub fn is_ready(&self) -> bool {
        self.active().is_some()
    }

    /// Recall should try the vector leg: a provider is installed and no
    /// recent failure opened the circuit.
    pub fn usable_for_query(&self) -> bool {
        if !self.is_ready() {
            return false;
        }
        match self.open_until.lock() {
            Ok(g) => g.is_none_or(|t| Instant::now() >= t),
            Err(_) => true,
        }
    }

    /// Open the circuit now (the backfill found the provider down), so
    /// recall skips the vector leg for a while.
    pub fn trip(&self) {
        if let Ok(mut g) = self.open_until.lock() {
            *g = Some(Instant::now() + CIRCUIT_OPEN);
        }
    }

    fn record(&self, ok: bool, lane: Lane) {
        if ok {
            self.successes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut o) = self.outcomes.lock() {
            if o.len() == OUTCOMES {
                o.pop_front();
            }
            o.push_back(ok);
        }
        // Any success closes the circuit; only recall's own failures open
        // it (a background batch can fail for one bad input while the
        // provider is fine; the backfill trips it when all inputs fail).
        if ok || lane == Lane::Query {
            if let Ok(mut g) = self.open_until.lock() {
                *g = if ok {
                    None
                } else {
                    Some(Instant::now() + CIRCUIT_OPEN)
                };
            }
        }
    }

    /// Embed `texts` with the active provider, bounded by the configured
    /// timeout; every vector is checked against the database's dimension
    /// and L2-normalised. Each call counts towards the success rate.
    pub async fn embed(&self, texts: &[String], lane: Lane) -> Result<Vec<Vec<f32>>, EmbedError> {
        let provider = self.active().ok_or_else(|| {
            EmbedError::Unavailable(
                self.status()
                    .error
                    .unwrap_or_else(|| "no provider loaded".into()),
            )
        })?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let limit = self.settings.timeout_ms;
        let res =
            match tokio::time::timeout(Duration::from_millis(limit), provider.embed(texts, lane))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(EmbedError::Timeout(limit)),
            };
        let res = res.and_then(|vs| {
            if vs.len() != texts.len() {
                return Err(EmbedError::Provider(format!(
                    "{} vectors for {} texts",
                    vs.len(),
                    texts.len()
                )));
            }
            vs.into_iter()
                .map(|v| {
                    if v.len() != self.dims {
                        Err(EmbedError::Dimensions {
                            got: v.len(),
                            want: self.dims,
                        })
                    } else {
                        normalised(v)
                    }
                })
                .collect()
        });
        self.record(res.is_ok(), lane);
        if let Err(e) = &res {
            tracing::warn!(error = %e, provider = provider.provider(), "embedding call failed");
        }
        res
    }

    /// The embedding of a recall query, from the LRU when it was asked
    /// before.
    /// The cached embedding of `query`, if the query cache holds it (not
    /// counted as a hit or miss).
    pub fn cached_query(&self, query: &str) -> Option<Arc<Vec<f32>>> {
        let c = self.cache.as_ref()?;
        let v = c.lock().ok()?.peek(query.trim()).cloned();
        if v.is_some() {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    pub async fn embed_query(&self, query: &str) -> Result<Arc<Vec<f32>>, EmbedError> {
        let key = query.trim().to_string();
        if let Some(c) = &self.cache {
            if let Some(v) = c.lock().ok().and_then(|mut m| m.get(&key).cloned()) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v);
            }
            self.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let mut out = self.embed(std::slice::from_ref(&key), Lane::Query).await?;
        let v = Arc::new(out.pop().unwrap_or_default());
        if let Some(c) = &self.cache {
            if let Ok(mut m) = c.lock() {
                m.put(key, v.clone());
            }
        }
        Ok(v)
    }

    /// Where the provider stands and how its calls went.
    pub fn status(&self) -> ProviderStatus {
        let (state, error) = self.state.read().map(|s| s.clone()).unwrap_or((
            ProviderState::Unavailable,
            Some("state lock poisoned".into()),
        ));
        let success_rate = self.outcomes.lock().ok().and_then(|o| {
            (!o.is_empty()).then(|| o.iter().filter(|ok| **ok).count() as f64 / o.len() as f64)
        });
        let (entries, capacity) = match &self.cache {
            Some(c) => c.lock().map(|m| (m.len(), m.cap().get())).unwrap_or((0, 0)),
            None => (0, 0),
        };
        let successes = self.successes.load(Ordering::Relaxed);
        let failures = self.failures.load(Ordering::Relaxed);
        ProviderStatus {
            provider: self.settings.provider.clone(),
            model: self.settings.model.clone(),
            dimensions: self.dims,
            // Installed and not failing right now.
            available: state == ProviderState::Ready && self.usable_for_query(),
            state,
            error,
            calls: successes + failures,
            failures,
            success_rate,
            query_cache: QueryCacheStatus {
                entries,
                capacity,
                hits: self.cache_hits.load(Ordering::Relaxed),
                misses: self.cache_misses.load(Ordering::Relaxed),
            },
        }
    }
}

/// Scale `v` to unit length (cosine then equals the dot product); a zero
/// or non-finite vector is a provider failure.
fn normalised(mut v: Vec<f32>) -> Result<Vec<f32>, EmbedError> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(EmbedError::Provider(
            "zero or non-finite embedding vector".into(),
        ));
    }
    for x in &mut v {
        *x /= norm;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(usize);

    impl Embedder for Fixed {
        fn provider(&self) -> &'static str {
            "fixed"
        }
        fn embed<'a>(&'a self, texts: &'a [String], _lane: Lane) -> EmbedFuture<'a> {
            Box::pin(async move { Ok(texts.iter().map(|_| vec![3.0; self.0]).collect()) })
        }
    }

    fn settings(dims: usize) -> EmbeddingSettings {
        EmbeddingSettings {
            provider: "openai".into(),
            dimensions: dims,
            ..EmbeddingSettings::default()
        }
    }

    #[tokio::test]
    async fn vectors_are_normalised_and_dimension_mismatch_counts_as_failure() {
        let ok = EmbedService::with_provider(&settings(4), Arc::new(Fixed(4)));
        let v = ok.embed(&["a".into()], Lane::Query).await.expect("embeds");
        assert!((v[0].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(ok.status().success_rate, Some(1.0));

        let bad = EmbedService::with_provider(&settings(8), Arc::new(Fixed(4)));
        let e = bad.embed(&["a".into()], Lane::Query).await;
        assert!(matches!(e, Err(EmbedError::Dimensions { got: 4, want: 8 })));
        let st = bad.status();
        assert_eq!((st.calls, st.failures, st.success_rate), (1, 1, Some(0.0)));
        assert!(!bad.usable_for_query(), "a failure opens the circuit");
    }

    #[tokio::test]
    async fn repeated_queries_hit_the_cache() {
        let s = EmbedService::with_provider(&settings(4), Arc::new(Fixed(4)));
        s.embed_query("hello").await.expect("first");
        s.embed_query(" hello ").await.expect("second");
        let st = s.status();
        assert_eq!((st.query_cache.hits, st.query_cache.misses), (1, 1));
        assert_eq!(st.calls, 1, "the model ran once");
    }
}
