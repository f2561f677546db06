//! `signet mcp`: MCP over stdio for harnesses that spawn their servers
//! (Claude Code's `mcpServers`), bridged to a running daemon's `/mcp`.
//!
//! Each newline-delimited JSON-RPC message read from stdin is POSTed to
//! `SIGNET_DAEMON_URL` (default `http://$SIGNET_HOST:$SIGNET_PORT/mcp`,
//! 127.0.0.1:3850) with `SIGNET_TOKEN` (or `SIGNET_API_KEY`) as the bearer
//! token, and the daemon's answer is written to stdout as one line. The
//! daemon's MCP server (the `rmcp` SDK) is the only implementation of the
//! protocol and the tools; this is transport, so stdio and HTTP clients get
//! the same tools, auth and errors. A refusal of the HTTP request itself
//! (401, 403, 413, 429, an unreachable daemon) becomes a JSON-RPC error for
//! each request of the message: with a missing token `initialize` fails,
//! so the client's connection does too. Nothing but MCP goes to stdout.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::cli::endpoint::Endpoint;

/// JSON-RPC error code for "the daemon refused or could not be reached".
pub const DAEMON_ERROR: i64 = -32001;

/// Where and how to reach the daemon.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `/mcp` endpoint.
    pub url: String,
    pub token: Option<String>,
}

impl Target {
    /// From the environment (see [`Endpoint::from_env`]): the daemon's
    /// base URL with `/mcp` appended, and its token.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Target {
        let endpoint = Endpoint::from_env(var);
        Target {
            url: endpoint.url("/mcp"),
            token: endpoint.token,
        }
    }
}

/// The ids of the requests in a message (a batch has several;
/// notifications and responses have none).
fn request_ids(msg: &Value) -> Vec<Value> {
    let one = |m: &Value| {
        (m.get("method").is_some())
            .then(|| m.get("id").cloned())
            .flatten()
            .filter(|id| !id.is_null())
    };
    match msg {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        m => one(m).into_iter().collect(),
    }
}

fn error_line(id: Value, code: i64, message: &str) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }).to_string()
}

/// Forward one message; the lines to write back.
async fn forward(
    client: &reqwest::Client,
    target: &Target,
    version: Option<String>,
    line: &str,
) -> Vec<String> {
    let msg: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return vec![error_line(Value::Null, -32700, "Parse error: Invalid JSON")],
    };
    let ids = request_ids(&msg);
    let mut req = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(line.to_string());
    if let Some(t) = &target.token {
        req = req.bearer_auth(t);
    }
    if let Some(v) = version {
        req = req.header("mcp-protocol-version", v);
    }
    let refused = |why: String| -> Vec<String> {
        ids.iter()
            .map(|id| error_line(id.clone(), DAEMON_ERROR, &why))
            .collect()
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return refused(format!("signet daemon unreachable at {}: {e}", target.url)),
    };
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::ACCEPTED || body.trim().is_empty() && status.is_success() {
        return Vec::new();
    }
    let answer: Option<Value> = serde_json::from_str(&body).ok();
    if status.is_success() {
        return match answer {
            Some(v) => vec![v.to_string()],
            None => refused(format!("signet daemon answered {status} with no JSON")),
        };
    }
    // A JSON-RPC error from the transport (id null): give it the ids.
    if let Some(err) = answer
        .as_ref()
        .and_then(|a| a.get("error"))
        .filter(|_| answer.as_ref().is_some_and(|a| a.get("jsonrpc").is_some()))
    {
        let code = err
            .get("code")
            .and_then(Value::as_i64)
            .unwrap_or(DAEMON_ERROR);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return ids
            .iter()
            .map(|id| error_line(id.clone(), code, message))
            .collect();
    }
    let why = answer
        .as_ref()
        .and_then(|a| a.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(body);
    refused(format!("signet daemon answered {}: {why}", status.as_u16()))
}

/// The protocol version an `initialize` answer agreed on.
fn negotiated(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    v.get("result")?
        .get("protocolVersion")?
        .as_str()
        .map(str::to_string)
}

/// Run the bridge until stdin closes.
pub async fn run(target: Target) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if out.write_all(line.as_bytes()).await.is_err()
                || out.write_all(b"\n").await.is_err()
                || out.flush().await.is_err()
            {
                break;
            }
        }
    });
    let version = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let (client, target, tx, version) =
            (client.clone(), target.clone(), tx.clone(), version.clone());
        // Requests run concurrently, as over HTTP; answers carry their ids.
        inflight.spawn(async move {
            let current = version.lock().ok().and_then(|v| v.clone());
            for out in forward(&client, &target, current, &line).await {
                if let Some(v) = negotiated(&out) {
                    if let Ok(mut g) = version.lock() {
                        *g = Some(v);
                    }
                }
                let _ = tx.send(out).await;
            }
        });
    }
    while inflight.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_comes_from_the_environment_like_signets() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let t = Target::from_env(env(&[]));
        assert_eq!(t.url, "http://127.0.0.1:3850/mcp");
        assert_eq!(t.token, None);
        let t = Target::from_env(env(&[("SIGNET_HOST", "10.0.0.2"), ("SIGNET_PORT", "4000")]));
        assert_eq!(t.url, "http://10.0.0.2:4000/mcp");
        let t = Target::from_env(env(&[
            ("SIGNET_DAEMON_URL", "https://mem.example.com/"),
            ("SIGNET_API_KEY", "k1"),
        ]));
        assert_eq!(t.url, "https://mem.example.com/mcp");
        assert_eq!(t.token.as_deref(), Some("k1"));
        let t = Target::from_env(env(&[
            ("SIGNET_DAEMON_URL", "http://h:1/mcp"),
            ("SIGNET_TOKEN", "t"),
            ("SIGNET_API_KEY", "k"),
        ]));
        assert_eq!(
            (t.url.as_str(), t.token.as_deref()),
            ("http://h:1/mcp", Some("t"))
        );
    }

    #[test]
    fn only_requests_have_ids_to_answer() {
        let ids = |s: &str| request_ids(&serde_json::from_str(s).expect("json"));
        assert_eq!(
            ids(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#),
            vec![json!(7)]
        );
        assert!(ids(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_empty());
        assert!(ids(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_empty());
        assert_eq!(
            ids(
                r#"[{"jsonrpc":"2.0","id":"a","method":"x"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":2,"method":"y"}]"#
            ),
            vec![json!("a"), json!(2)]
        );
    }
}
