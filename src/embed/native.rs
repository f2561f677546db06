//! The built-in provider: a BERT sentence-embedding model (the reference is
//! all-MiniLM-L6-v2, 384 dimensions) run in-process on the CPU with candle.
//!
//! Recall's query embeddings run on the blocking pool at normal priority.
//! The background backfill runs inside its own one-thread rayon pool whose
//! thread has the lowest scheduling priority (nice 19 on Linux): candle's
//! parallel element-wise ops run on the current rayon pool, so every part of
//! a backfill batch, not only the matrix products, yields to requests when
//! they keep both cores busy. Matrix products run on the calling thread
//! (`RAYON_NUM_THREADS=1`, set by `main` unless the operator set it).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::model_files::{self, ModelError, Source};
use super::{EmbedError, EmbedFuture, Embedder, Lane};
use crate::config::EmbeddingSettings;

/// Longest input in tokens (the model's own limit for all-MiniLM-L6-v2).
const MAX_TOKENS: usize = 256;

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    dims: usize,
}

/// The loaded model and the low-priority pool of the backfill.
pub struct NativeEmbedder {
    model: Arc<Model>,
    background: Arc<rayon::ThreadPool>,
}

impl NativeEmbedder {
    /// Find the model locally, else fetch it (when `autoFetch`), then load.
    pub async fn find_or_fetch(
        settings: &EmbeddingSettings,
        workspace: &Path,
    ) -> Result<Self, ModelError> {
        let dir = match model_files::find_local(settings, workspace)? {
            Some(d) => d,
            None if settings.auto_fetch => {
                tracing::info!(model = %settings.model, "fetching the embedding model into the workspace");
                let dest = model_files::workspace_dir(workspace, &settings.model);
                model_files::fetch(settings, &dest, Source::Auto).await?
            }
            None => {
                return Err(ModelError::NotFound(format!(
                    "model {} not found (embedding.modelPath, {}, the Hugging Face cache) and embedding.autoFetch is off; run `signet model fetch`",
                    settings.model,
                    model_files::workspace_dir(workspace, &settings.model).display()
                )))
            }
        };
        tokio::task::spawn_blocking(move || NativeEmbedder::load(&dir))
            .await
            .map_err(|e| ModelError::Load(e.to_string()))?
    }

    /// Load the model from a directory with its three files.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let err = |what: &str, e: &dyn std::fmt::Display| ModelError::Load(format!("{what}: {e}"));
        let config: Config = serde_json::from_slice(
            &std::fs::read(dir.join("config.json")).map_err(|e| err("config.json", &e))?,
        )
        .map_err(|e| err("config.json", &e))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| err("tokenizer.json", &e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| err("tokenizer", &e))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| err("model.safetensors", &e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| err("model.safetensors", &e))?;
        let bert = BertModel::load(vb, &config).map_err(|e| err("model", &e))?;
        let model = Arc::new(Model {
            bert,
            tokenizer,
            dims: config.hidden_size,
        });
        // Warm up on this (normal-priority) thread: first-use setup, such
        // as a thread pool, must not inherit the backfill's low priority.
        model
            .embed(&["warm up".to_string()])
            .map_err(|e| err("warm-up", &e))?;
        let background = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "embed-backfill".into())
            .start_handler(|_| lower_priority())
            .build()
            .map_err(|e| err("backfill pool", &e))?;
        Ok(NativeEmbedder {
            model,
            background: Arc::new(background),
        })
    }

    /// Vector dimension of the loaded model.
    pub fn dims(&self) -> usize {
        self.model.dims
    }

    /// Embed synchronously on the calling thread (benches).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model.embed(texts)
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id; setpriority
    // with a thread id changes only that thread on Linux.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

impl Model {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let fail = |e: &dyn std::fmt::Display| EmbedError::Provider(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail(&e))?;
        let n = encodings.len();
        let len = encodings.first().map(|e| e.get_ids().len()).unwrap_or(0);
        if n == 0 || len == 0 {
            return Ok(vec![vec![0.0; self.dims]; n]);
        }
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let dev = &Device::Cpu;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (n, len), dev)?;
            let mask = Tensor::from_vec(mask, (n, len), dev)?;
            let types = ids.zeros_like()?;
            let out = self.bert.forward(&ids, &types, Some(&mask))?;
            // Mean pooling over the real (unpadded) tokens.
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = out.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
            summed.broadcast_div(&counts)?.to_vec2::<f32>()
        };
        run().map_err(|e| fail(&e))
    }
}

impl Embedder for NativeEmbedder {
    fn provider(&self) -> &'static str {
        "native"
    }

    fn embed<'a>(&'a self, texts: &'a [String], lane: Lane) -> EmbedFuture<'a> {
        Box::pin(async move {
            let texts = texts.to_vec();
            match lane {
                Lane::Query => {
                    let m = self.model.clone();
                    tokio::task::spawn_blocking(move || m.embed(&texts))
                        .await
                        .map_err(|e| EmbedError::Provider(e.to_string()))?
                }
                Lane::Background => {
                    let m = self.model.clone();
                    let pool = self.background.clone();
                    tokio::task::spawn_blocking(move || pool.install(|| m.embed(&texts)))
                        .await
                        .map_err(|e| EmbedError::Provider(e.to_string()))?
                }
            }
        })
    }
}
