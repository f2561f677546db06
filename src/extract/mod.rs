//! LLM extraction (SPEC §8): facts out of a memory, and an
//! ADD/UPDATE/DELETE/NONE decision for each against its five most similar
//! memories.
//!
//! Providers: `ollama` (`POST {endpoint}/api/generate`, `stream: false`)
//! and `openai` (`POST {endpoint}/v1/chat/completions`). Replies are parsed
//! by [`parse`], which tolerates `<think>` blocks, code fences and prose
//! around the JSON; anything else is a job failure, never a crash.

pub mod parse;

use std::time::Duration;

use serde::Serialize;

use crate::config::ExtractionSettings;
use crate::embed::remote::join;
use parse::{Action, Decision, Fact};

/// Why an LLM call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("LLM request failed: {0}")]
    Request(String),
    #[error("LLM timed out after {0} ms")]
    Timeout(u64),
    #[error("LLM reply unusable: {0}")]
    Reply(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Ollama,
    OpenAi,
}

/// A client of the configured extraction LLM.
pub struct Llm {
    flavor: Flavor,
    url: String,
    model: String,
    api_key: Option<String>,
    timeout_ms: u64,
    client: reqwest::Client,
    pub min_confidence: f64,
}

/// Marks the prompt that asks for facts (stable, so stub servers can
/// route on it).
pub const EXTRACT_MARK: &str = "EXTRACT FACTS";
/// Marks the prompt that asks for a decision.
pub const DECIDE_MARK: &str = "DECIDE MEMORY ACTION";

impl Llm {
    /// The client for `s`, or `None` for provider `none`.
    pub fn from_settings(s: &ExtractionSettings) -> Result<Option<Llm>, LlmError> {
        let (flavor, default_endpoint, path, default_model) = match s.provider.as_str() {
            "none" => return Ok(None),
            "ollama" => (
                Flavor::Ollama,
                "http://127.0.0.1:11434",
                "/api/generate",
                "llama3.2",
            ),
            "openai" => (
                Flavor::OpenAi,
                "https://api.openai.com",
                "/v1/chat/completions",
                "gpt-4o-mini",
            ),
            other => return Err(LlmError::Request(format!("unknown provider '{other}'"))),
        };
        let api_key = s
            .api_key
            .clone()
            .or_else(|| std::env::var("SIGNET_EXTRACTION_API_KEY").ok())
            .or_else(|| {
                (flavor == Flavor::OpenAi)
                    .then(|| std::env::var("OPENAI_API_KEY").ok())
                    .flatten()
            });
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| LlmError::Request(e.to_string()))?;
        Ok(Some(Llm {
            flavor,
            url: join(s.endpoint.as_deref().unwrap_or(default_endpoint), path),
            model: s.model.clone().unwrap_or_else(|| default_model.into()),
            api_key,
            timeout_ms: s.timeout_ms,
            client,
            min_confidence: s.min_confidence,
        }))
    }

    /// Provider name.
    pub fn provider(&self) -> &'static str {
        match self.flavor {
            Flavor::Ollama => "ollama",
            Flavor::OpenAi => "openai",
        }
    }

    /// Send one prompt; the reply text.
    pub async fn complete(&self, prompt: &str) -> Result<String, LlmError> {
        let body = match self.flavor {
            Flavor::Ollama => serde_json::json!({
                "model": self.model, "prompt": prompt, "stream": false,
                "options": {"temperature": 0}
            }),
            Flavor::OpenAi => serde_json::json!({
                "model": self.model, "temperature": 0,
                "messages": [{"role": "user", "content": prompt}]
            }),
        };
        let mut req = self.client.post(&self.url).json(&body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let call = async {
            let resp = req
                .send()
                .await
                .map_err(|e| LlmError::Request(e.to_string()))?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| LlmError::Request(e.to_string()))?;
            if !status.is_success() {
                return Err(LlmError::Request(format!("HTTP {status}")));
            }
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| LlmError::Reply(format!("not JSON: {e}")))?;
            let text = match self.flavor {
                Flavor::Ollama => v["response"].as_str(),
                Flavor::OpenAi => v["choices"][0]["message"]["content"].as_str(),
            };
            text.map(str::to_string)
                .ok_or_else(|| LlmError::Reply("no text in the reply".into()))
        };
        match tokio::time::timeout(Duration::from_millis(self.timeout_ms), call).await {
            Ok(r) => r,
            Err(_) => Err(LlmError::Timeout(self.timeout_ms)),
        }
    }

    /// The facts of `content` at or above the confidence floor.
    pub async fn facts(&self, content: &str) -> Result<(Vec<Fact>, usize), LlmError> {
        let reply = self.complete(&extract_prompt(content)).await?;
        let facts = parse::facts(&reply).map_err(LlmError::Reply)?;
        let total = facts.len();
        let kept = facts
            .into_iter()
            .filter(|f| f.confidence >= self.min_confidence)
            .collect();
        Ok((kept, total))
    }

    /// Decide what `fact` does to the `candidates` (id, content).
    pub async fn decide(
        &self,
        fact: &Fact,
        candidates: &[(String, String)],
    ) -> Result<Decision, LlmError> {
        let reply = self.complete(&decide_prompt(fact, candidates)).await?;
        let d = parse::decision(&reply).map_err(LlmError::Reply)?;
        if matches!(d.action, Action::Update | Action::Delete)
            && !d
                .target_id
                .as_ref()
                .is_some_and(|t| candidates.iter().any(|(id, _)| id == t))
        {
            return Err(LlmError::Reply(format!(
                "{:?} names no listed memory (targetId {:?})",
                d.action, d.target_id
            )));
        }
        Ok(d)
    }
}

/// The extraction prompt.
pub fn extract_prompt(content: &str) -> String {
    format!(
        "{EXTRACT_MARK}\n\
         Extract the durable facts worth remembering from the memory below: preferences, \
         decisions, rules, learnings, issues and plain facts. Each fact must stand alone.\n\
         Reply with JSON only, no prose:\n\
         {{\"facts\": [{{\"content\": \"...\", \"type\": \"fact|preference|decision|rule|learning|issue\", \"confidence\": 0.0}}]}}\n\
         Use an empty list when nothing is worth keeping.\n\n\
         Memory:\n{content}\n"
    )
}

/// The decision prompt.
pub fn decide_prompt(fact: &Fact, candidates: &[(String, String)]) -> String {
    let listed: String = candidates
        .iter()
        .map(|(id, c)| format!("- [{id}] {c}\n"))
        .collect();
    format!(
        "{DECIDE_MARK}\n\
         A new fact was learned. Compare it with the existing memories and choose one action:\n\
         ADD (new information), UPDATE (an existing memory should be replaced by a merged \
         version), DELETE (the fact shows an existing memory is wrong or obsolete), NONE \
         (already known).\n\
         Reply with JSON only: {{\"action\": \"ADD|UPDATE|DELETE|NONE\", \"targetId\": \"<id for \
         UPDATE/DELETE>\", \"content\": \"<merged content for UPDATE>\", \"reason\": \"...\"}}\n\n\
         New fact: {}\n\nExisting memories:\n{listed}",
        fact.content
    )
}

/// What one extraction did, for the job's history and the status.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub facts: usize,
    pub dropped_low_confidence: usize,
    pub added: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub proposed: usize,
    pub refused: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_carry_their_marks_and_inputs() {
        let p = extract_prompt("we deploy on fridays");
        assert!(p.starts_with(EXTRACT_MARK) && p.contains("we deploy on fridays"));
        let f = Fact {
            content: "deploys happen on friday".into(),
            kind: None,
            confidence: 0.9,
        };
        let d = decide_prompt(&f, &[("abc".into(), "deploys are on monday".into())]);
        assert!(d.starts_with(DECIDE_MARK) && d.contains("[abc] deploys are on monday"));
    }
}
