//! Remote embedding providers over HTTP: `ollama` and any
//! OpenAI-compatible `/v1/embeddings` endpoint.

use serde::Deserialize;

use super::{EmbedError, EmbedFuture, Embedder, Lane};
use crate::config::EmbeddingSettings;

/// Which wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `POST {endpoint}/api/embeddings {model, prompt}` → `{embedding}`, one
    /// text per call.
    Ollama,
    /// `POST {endpoint}/v1/embeddings {model, input[]}` → `{data[{index,
    /// embedding}]}`, batched.
    OpenAi,
}

/// A remote provider.
pub struct RemoteEmbedder {
    flavor: Flavor,
    url: String,
    model: String,
    api_key: Option<String>,
    client: reqwest::Client,
}

/// The URL of `path` under `endpoint`, without doubling a `/v1` the
/// operator already wrote.
pub fn join(endpoint: &str, path: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    match path.strip_prefix("/v1") {
        Some(rest) if base.ends_with("/v1") => format!("{base}{rest}"),
        _ => format!("{base}{path}"),
    }
}

impl RemoteEmbedder {
    /// A client for the configured provider.
    pub fn new(s: &EmbeddingSettings) -> Result<Self, EmbedError> {
        let (flavor, default_endpoint, path) = match s.provider.as_str() {
            "ollama" => (Flavor::Ollama, "http://127.0.0.1:11434", "/api/embeddings"),
            "openai" => (Flavor::OpenAi, "https://api.openai.com", "/v1/embeddings"),
            other => {
                return Err(EmbedError::Unavailable(format!(
                    "'{other}' is not a remote provider"
                )))
            }
        };
        let endpoint = s.endpoint.as_deref().unwrap_or(default_endpoint);
        let api_key = s
            .api_key
            .clone()
            .or_else(|| std::env::var("SIGNET_EMBEDDING_API_KEY").ok())
            .or_else(|| {
                (flavor == Flavor::OpenAi)
                    .then(|| std::env::var("OPENAI_API_KEY").ok())
                    .flatten()
            });
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| EmbedError::Unavailable(e.to_string()))?;
        Ok(RemoteEmbedder {
            flavor,
            url: join(endpoint, path),
            model: s.model.clone(),
            api_key,
            client,
        })
    }

    async fn post(&self, body: serde_json::Value) -> Result<bytes::Bytes, EmbedError> {
        let mut req = self.client.post(&self.url).json(&body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| EmbedError::Provider(format!("{}: {e}", self.url)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EmbedError::Provider(format!("{}: {e}", self.url)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(EmbedError::Provider(format!(
                "{}: HTTP {status}: {text}",
                self.url
            )));
        }
        Ok(bytes)
    }

    async fn ollama(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        #[derive(Deserialize)]
        struct Reply {
            embedding: Vec<f32>,
        }
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let body = self
                .post(serde_json::json!({"model": self.model, "prompt": t}))
                .await?;
            let r: Reply = serde_json::from_slice(&body)
                .map_err(|e| EmbedError::Provider(format!("bad ollama reply: {e}")))?;
            out.push(r.embedding);
        }
        Ok(out)
    }

    async fn openai(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        #[derive(Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }
        #[derive(Deserialize)]
        struct Reply {
            data: Vec<Item>,
        }
        let body = self
            .post(serde_json::json!({"model": self.model, "input": texts}))
            .await?;
        let r: Reply = serde_json::from_slice(&body)
            .map_err(|e| EmbedError::Provider(format!("bad embeddings reply: {e}")))?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in r.data {
            let slot = out.get_mut(item.index).ok_or_else(|| {
                EmbedError::Provider(format!("reply index {} out of range", item.index))
            })?;
            *slot = Some(item.embedding);
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::Provider("reply misses an input".into())))
            .collect()
    }
}

impl Embedder for RemoteEmbedder {
    fn provider(&self) -> &'static str {
        match self.flavor {
            Flavor::Ollama => "ollama",
            Flavor::OpenAi => "openai",
        }
    }

    fn embed<'a>(&'a self, texts: &'a [String], _lane: Lane) -> EmbedFuture<'a> {
        Box::pin(async move {
            match self.flavor {
                Flavor::Ollama => self.ollama(texts).await,
                Flavor::OpenAi => self.openai(texts).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn v1_is_not_doubled() {
        assert_eq!(
            join("http://h:1/v1/", "/v1/embeddings"),
            "http://h:1/v1/embeddings"
        );
        assert_eq!(
            join("http://h:1", "/v1/embeddings"),
            "http://h:1/v1/embeddings"
        );
        assert_eq!(
            join("http://h:1/", "/api/embeddings"),
            "http://h:1/api/embeddings"
        );
    }
}
