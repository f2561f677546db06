//! `signet hook <name>`: the command a harness runs at its lifecycle events
//! (Claude Code's SessionStart, UserPromptSubmit, PreCompact, SessionEnd),
//! a client of the daemon's `POST /api/hooks/<name>`.
//!
//! The harness writes its event as one JSON object on stdin (Claude Code:
//! `session_id`, `cwd`, `prompt`, `transcript_path`, `reason`, ...);
//! [`request_body`] maps it and the command-line options onto the route's
//! body, and [`reply_text`] picks what the harness should see from the
//! reply (the text to inject, the summary prompt, recalled memories).
//! Those two are plain functions; [`call`] does the one HTTP request.
//!
//! A hook must never break the harness. Bad or empty stdin is `{}`;
//! `SIGNET_NO_HOOKS=1` or `SIGNET_BYPASS=1` skips the call silently; a
//! daemon that is down, too slow (5 s, session-end 60 s) or refuses costs
//! one `[signet] …` line on stderr, and the exit status is 0 whatever
//! happens. Nothing but the reply's text ever goes to stdout, since a
//! harness adds that text to the model's context.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::endpoint::Endpoint;

/// The hook routes, named as on the command line and in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Hook {
    /// A session begins: the reply's `inject` seeds the context.
    SessionStart,
    /// The user sent a prompt: the reply's `inject` holds recalled memories.
    UserPromptSubmit,
    /// The session ended: the daemon queues the transcript for extraction.
    SessionEnd,
    /// The harness is about to compact: the reply's `summaryPrompt` asks
    /// the agent to store what matters.
    PreCompaction,
    /// Compaction finished: its summary is stored as a memory.
    CompactionComplete,
    /// Store the event's `content` as a memory.
    Remember,
    /// Search memories for the event's `query`.
    Recall,
}

impl Hook {
    /// Every hook, in lifecycle order.
    pub const ALL: [Hook; 7] = [
        Hook::SessionStart,
        Hook::UserPromptSubmit,
        Hook::PreCompaction,
        Hook::CompactionComplete,
        Hook::SessionEnd,
        Hook::Remember,
        Hook::Recall,
    ];

    /// The route's last path segment, also the subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            Hook::SessionStart => "session-start",
            Hook::UserPromptSubmit => "user-prompt-submit",
            Hook::SessionEnd => "session-end",
            Hook::PreCompaction => "pre-compaction",
            Hook::CompactionComplete => "compaction-complete",
            Hook::Remember => "remember",
            Hook::Recall => "recall",
        }
    }

    /// How long the whole request may take. Session-end hands the daemon
    /// a transcript to read, so it gets longer (as in Signet).
    pub fn timeout(self) -> Duration {
        match self {
            Hook::SessionEnd => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }
}

/// The command-line options every hook accepts, whether or not its route
/// uses them (Signet's CLI refuses `--project` on pre-compaction, which
/// broke its own PreCompact hook; these never refuse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOptions {
    /// `-H/--harness`: the caller, sent as `harness` (e.g. `claude-code`).
    pub harness: String,
    /// `--project`: wins over the event's `cwd`.
    pub project: Option<String>,
    /// `--agent-id`, sent as `agentId`.
    pub agent_id: Option<String>,
    /// `--session-key`: wins over the event's `session_id`.
    pub session_key: Option<String>,
    /// `--runtime-path` (`plugin` or `legacy`), sent as `runtimePath`.
    pub runtime_path: Option<String>,
}

/// What a hook run writes: at most one text for stdout (the harness reads
/// it) and one line for stderr (a person reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookOutput {
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// The stderr line for a daemon that cannot be reached or did not answer
/// in time.
pub const SKIPPED: &str = "[signet] daemon not running, hook skipped";

/// Whether the environment turns hooks off (`SIGNET_NO_HOOKS` or
/// `SIGNET_BYPASS` set to `1` or `true`).
pub fn disabled(var: impl Fn(&str) -> Option<String>) -> bool {
    ["SIGNET_NO_HOOKS", "SIGNET_BYPASS"].iter().any(|k| {
        var(k).is_some_and(|v| {
            let v = v.trim();
            v == "1" || v.eq_ignore_ascii_case("true")
        })
    })
}

/// The harness's event: stdin parsed as a JSON object; anything else
/// (empty, not JSON, an array) is the empty object.
pub fn parse_event(stdin: &str) -> Map<String, Value> {
    match serde_json::from_str(stdin.trim_start_matches('\u{feff}').trim()) {
        Ok(Value::Object(event)) => event,
        _ => Map::new(),
    }
}

/// The first of `keys` whose value is a non-blank string.
fn text(event: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        event
            .get(*k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    })
}

/// The first of `keys` whose value is a number.
fn number(event: &Map<String, Value>, keys: &[&str]) -> Option<Value> {
    keys.iter()
        .find_map(|k| event.get(*k).filter(|v| v.is_number()).cloned())
}

/// A command-line option, unless blank.
fn given(option: &Option<String>) -> Option<String> {
    option.clone().filter(|s| !s.trim().is_empty())
}

/// The text of a message's `content`: a string, or the `text` of its
/// text parts (`[{type:"text",text}]`, tool calls skipped) joined by
/// newlines.
fn content_text(content: &Value) -> Option<String> {
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                Value::Object(part) => part
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "text")
                    .then(|| part.get("text").and_then(Value::as_str))
                    .flatten(),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The assistant's last words: a `last_assistant_message`-style key, else
/// the newest `messages[]` item with role `assistant` that has text (an
/// item may also wrap its role and content in `message`, as transcript
/// lines do).
pub fn last_assistant_message(event: &Map<String, Value>) -> Option<String> {
    text(
        event,
        &[
            "last_assistant_message",
            "lastAssistantMessage",
            "assistant_message",
        ],
    )
    .or_else(|| {
        event
            .get("messages")?
            .as_array()?
            .iter()
            .rev()
            .filter_map(|m| match m.get("role") {
                Some(_) => Some(m),
                None => m.get("message"),
            })
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
            .find_map(|m| m.get("content").and_then(content_text))
    })
}

/// The JSON body for `POST /api/hooks/<hook>`. Always `harness`; absent
/// or blank values are left out rather than sent as null or "".
pub fn request_body(hook: Hook, options: &HookOptions, event: &Map<String, Value>) -> Value {
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.to_string(), v);
        }
    };
    let s = |v: Option<String>| v.map(Value::String);
    put("harness", Some(Value::String(options.harness.clone())));
    put("agentId", s(given(&options.agent_id)));
    put("runtimePath", s(given(&options.runtime_path)));
    let session_id = text(event, &["session_id", "sessionId"]);
    let session_key = given(&options.session_key).or_else(|| session_id.clone());
    let project = given(&options.project).or_else(|| text(event, &["cwd"]));
    put("sessionKey", s(session_key));
    match hook {
        Hook::SessionStart => put("project", s(project)),
        Hook::UserPromptSubmit => {
            put(
                "userPrompt",
                s(text(
                    event,
                    &["prompt", "user_prompt", "userPrompt", "message"],
                )),
            );
            put("lastAssistantMessage", s(last_assistant_message(event)));
            put("project", s(project));
        }
        Hook::SessionEnd => {
            put(
                "transcriptPath",
                s(text(event, &["transcript_path", "transcriptPath"])),
            );
            put("sessionId", s(session_id));
            // The daemon files the transcript under `cwd`.
            put("cwd", s(text(event, &["cwd"]).or(project)));
            put("reason", s(text(event, &["reason"])));
        }
        Hook::PreCompaction => {
            put(
                "sessionContext",
                s(text(
                    event,
                    &["session_context", "sessionContext", "summary"],
                )),
            );
            put(
                "messageCount",
                number(event, &["message_count", "messageCount"]),
            );
            put("project", s(project));
        }
        Hook::CompactionComplete => put("summary", s(text(event, &["summary"]))),
        Hook::Remember => {
            put("content", s(text(event, &["content", "prompt"])));
            put("who", s(text(event, &["who"])));
            put("project", s(project));
            put(
                "idempotencyKey",
                s(text(event, &["idempotency_key", "idempotencyKey"])),
            );
        }
        Hook::Recall => {
            put("query", s(text(event, &["query", "prompt"])));
            put("limit", number(event, &["limit"]));
            put("project", s(project));
        }
    }
    Value::Object(body)
}

/// What a 2xx reply shows the harness, and what it tells a person:
/// session-start and user-prompt-submit print `inject`, pre-compaction
/// `summaryPrompt`, remember the new memory's id (a reply with
/// `saved:false` is a failure on stderr), recall one `- content` line per
/// result; session-end and compaction-complete print nothing. Empty text
/// prints nothing. A bypassed session's reply prints nothing.
pub fn reply_text(hook: Hook, reply: &Value) -> HookOutput {
    let field = |k: &str| {
        reply
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let stdout = match hook {
        Hook::SessionStart | Hook::UserPromptSubmit => field("inject"),
        Hook::PreCompaction => field("summaryPrompt"),
        Hook::Remember => {
            if reply.get("saved") == Some(&Value::Bool(false)) {
                return HookOutput {
                    stdout: None,
                    stderr: Some("[signet] hook remember failed: memory not saved".into()),
                };
            }
            field("id")
        }
        Hook::Recall => {
            let lines: Vec<String> = reply
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("content").and_then(Value::as_str))
                .map(|c| format!("- {c}"))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        }
        Hook::SessionEnd | Hook::CompactionComplete => None,
    };
    HookOutput {
        stdout,
        stderr: None,
    }
}

/// The stderr line for a non-2xx reply: the body's `error` (else the raw
/// body, else the status's reason) on one line, cut at 200 characters.
pub fn failure_line(hook: Hook, status: reqwest::StatusCode, body: &str) -> String {
    let why = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    let why = if why.is_empty() {
        status.canonical_reason().unwrap_or("").to_string()
    } else {
        why
    };
    let why: String = why
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    format!(
        "[signet] hook {} failed: HTTP {}: {why}",
        hook.name(),
        status.as_u16()
    )
}

/// POST the body to the daemon and decide what to print. Never fails:
/// every error becomes a stderr line.
pub async fn call(hook: Hook, endpoint: &Endpoint, body: &Value) -> HookOutput {
    let skipped = || HookOutput {
        stdout: None,
        stderr: Some(SKIPPED.into()),
    };
    let Ok(client) = reqwest::Client::builder().timeout(hook.timeout()).build() else {
        return skipped();
    };
    let mut req = client
        .post(endpoint.url(&format!("/api/hooks/{}", hook.name())))
        .json(body);
    if let Some(t) = &endpoint.token {
        req = req.bearer_auth(t);
    }
    let Ok(resp) = req.send().await else {
        return skipped();
    };
    let status = resp.status();
    let Ok(text) = resp.text().await else {
        return skipped();
    };
    if !status.is_success() {
        return HookOutput {
            stdout: None,
            stderr: Some(failure_line(hook, status, &text)),
        };
    }
    reply_text(hook, &serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Stdin, unless it is a terminal (a person trying the command by hand
/// gets `{}` rather than a wait); unreadable or non-UTF-8 bytes are
/// tolerated.
pub fn read_stdin() -> String {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = stdin.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Write `text` and a final newline if it lacks one; a closed pipe is
/// ignored (the harness stopped listening; that is not our failure).
fn emit(mut out: impl Write, text: &str) {
    let nl = if text.ends_with('\n') { "" } else { "\n" };
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(nl.as_bytes()))
        .and_then(|()| out.flush());
}

/// The whole `signet hook` command against the process's environment,
/// stdin, stdout and stderr. Its exit status is always success.
pub fn run(hook: Hook, options: &HookOptions) {
    let var = |k: &str| std::env::var(k).ok();
    // Read the event even when hooks are off: a harness writing to a
    // process that already exited gets EPIPE.
    let event = parse_event(&read_stdin());
    if disabled(var) {
        return;
    }
    let body = request_body(hook, options, &event);
    let endpoint = Endpoint::from_env(var);
    let output = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(call(hook, &endpoint, &body)),
        Err(_) => HookOutput {
            stdout: None,
            stderr: Some(SKIPPED.into()),
        },
    };
    if let Some(text) = &output.stdout {
        emit(std::io::stdout().lock(), text);
    }
    if let Some(line) = &output.stderr {
        emit(std::io::stderr().lock(), line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options() -> HookOptions {
        HookOptions {
            harness: "claude-code".into(),
            project: None,
            agent_id: None,
            session_key: None,
            runtime_path: None,
        }
    }

    fn event(v: Value) -> Map<String, Value> {
        parse_event(&v.to_string())
    }

    fn claude_event() -> Map<String, Value> {
        event(json!({
            "session_id": "s-1",
            "cwd": "/home/me/proj",
            "transcript_path": "/home/me/.claude/projects/x/s-1.jsonl",
            "hook_event_name": "UserPromptSubmit",
            "prompt": "how do we deploy?",
            "reason": "exit",
        }))
    }

    #[test]
    fn session_start_sends_the_session_and_the_cwd_as_project() {
        let body = request_body(Hook::SessionStart, &options(), &claude_event());
        assert_eq!(
            body,
            json!({"harness": "claude-code", "sessionKey": "s-1", "project": "/home/me/proj"})
        );
    }

    #[test]
    fn command_line_options_win_over_the_event() {
        let opts = HookOptions {
            harness: "codex".into(),
            project: Some("/p".into()),
            agent_id: Some("a1".into()),
            session_key: Some("k9".into()),
            runtime_path: Some("plugin".into()),
        };
        let body = request_body(Hook::SessionStart, &opts, &claude_event());
        assert_eq!(
            body,
            json!({"harness": "codex", "project": "/p", "agentId": "a1",
                   "sessionKey": "k9", "runtimePath": "plugin"})
        );
        // Blank options count as absent.
        let blank = HookOptions {
            project: Some(" ".into()),
            session_key: Some(String::new()),
            ..options()
        };
        let body = request_body(Hook::SessionStart, &blank, &claude_event());
        assert_eq!(body["project"], "/home/me/proj");
        assert_eq!(body["sessionKey"], "s-1");
    }

    #[test]
    fn user_prompt_submit_sends_the_prompt_and_the_last_assistant_message() {
        let mut e = claude_event();
        e.insert("last_assistant_message".into(), json!("I used blue-green."));
        let body = request_body(Hook::UserPromptSubmit, &options(), &e);
        assert_eq!(
            body,
            json!({"harness": "claude-code", "sessionKey": "s-1", "project": "/home/me/proj",
                   "userPrompt": "how do we deploy?", "lastAssistantMessage": "I used blue-green."})
        );
        for key in ["user_prompt", "userPrompt", "message"] {
            let body = request_body(
                Hook::UserPromptSubmit,
                &options(),
                &event(json!({key: "hi"})),
            );
            assert_eq!(body["userPrompt"], "hi", "{key}");
        }
    }

    #[test]
    fn the_last_assistant_message_falls_back_to_the_messages_list() {
        let e = event(json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "old answer"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "part one"},
                {"type": "tool_use", "name": "Bash", "input": {}},
                {"type": "text", "text": "part two"}
            ]},
            {"role": "user", "content": "third"},
        ]}));
        assert_eq!(
            last_assistant_message(&e).as_deref(),
            Some("part one\npart two")
        );
        // A tool-call-only turn has no words: the one before it counts.
        let e = event(json!({"messages": [
            {"role": "assistant", "content": "said this"},
            {"role": "assistant", "content": [{"type": "tool_use", "name": "Bash"}]},
        ]}));
        assert_eq!(last_assistant_message(&e).as_deref(), Some("said this"));
        // Transcript-style items wrap the message.
        let e = event(json!({"messages": [
            {"type": "assistant", "message": {"role": "assistant", "content": "wrapped"}},
        ]}));
        assert_eq!(last_assistant_message(&e).as_deref(), Some("wrapped"));
        // An explicit key wins; no assistant at all gives none.
        let e = event(json!({"assistant_message": "explicit",
                             "messages": [{"role": "assistant", "content": "listed"}]}));
        assert_eq!(last_assistant_message(&e).as_deref(), Some("explicit"));
        let e = event(json!({"messages": [{"role": "user", "content": "q"}]}));
        assert_eq!(last_assistant_message(&e), None);
        assert_eq!(
            last_assistant_message(&event(json!({"messages": "x"}))),
            None
        );
    }

    #[test]
    fn session_end_forwards_the_transcript_and_the_session_as_id_and_key() {
        let body = request_body(Hook::SessionEnd, &options(), &claude_event());
        assert_eq!(
            body,
            json!({"harness": "claude-code", "sessionKey": "s-1", "sessionId": "s-1",
                   "transcriptPath": "/home/me/.claude/projects/x/s-1.jsonl",
                   "cwd": "/home/me/proj", "reason": "exit"})
        );
        // Without a cwd in the event, --project stands in for it.
        let opts = HookOptions {
            project: Some("/p".into()),
            session_key: Some("k".into()),
            ..options()
        };
        let body = request_body(Hook::SessionEnd, &opts, &event(json!({"session_id": "s"})));
        assert_eq!(
            body,
            json!({"harness": "claude-code", "sessionKey": "k", "sessionId": "s", "cwd": "/p"})
        );
    }

    #[test]
    fn pre_compaction_sends_the_context_and_the_message_count() {
        let e = event(
            json!({"session_id": "s", "cwd": "/c", "session_context": "ctx",
                             "message_count": 42, "trigger": "auto"}),
        );
        assert_eq!(
            request_body(Hook::PreCompaction, &options(), &e),
            json!({"harness": "claude-code", "sessionKey": "s", "project": "/c",
                   "sessionContext": "ctx", "messageCount": 42})
        );
        let e = event(json!({"summary": "so far", "message_count": "many"}));
        assert_eq!(
            request_body(Hook::PreCompaction, &options(), &e),
            json!({"harness": "claude-code", "sessionContext": "so far"})
        );
    }

    #[test]
    fn compaction_complete_sends_the_summary() {
        let e = event(json!({"session_id": "s", "cwd": "/c", "summary": "we did X"}));
        assert_eq!(
            request_body(Hook::CompactionComplete, &options(), &e),
            json!({"harness": "claude-code", "sessionKey": "s", "summary": "we did X"})
        );
    }

    #[test]
    fn remember_and_recall_take_content_and_query_or_the_prompt() {
        let e = event(
            json!({"session_id": "s", "cwd": "/c", "content": "likes tea",
                             "who": "me", "prompt": "ignored"}),
        );
        assert_eq!(
            request_body(Hook::Remember, &options(), &e),
            json!({"harness": "claude-code", "sessionKey": "s", "project": "/c",
                   "content": "likes tea", "who": "me"})
        );
        let e = event(json!({"prompt": "remember tea"}));
        assert_eq!(
            request_body(Hook::Remember, &options(), &e)["content"],
            "remember tea"
        );
        let e = event(json!({"query": "tea", "limit": 3, "cwd": "/c"}));
        assert_eq!(
            request_body(Hook::Recall, &options(), &e),
            json!({"harness": "claude-code", "project": "/c", "query": "tea", "limit": 3})
        );
        let e = event(json!({"prompt": "what tea"}));
        assert_eq!(
            request_body(Hook::Recall, &options(), &e)["query"],
            "what tea"
        );
    }

    #[test]
    fn bad_stdin_is_an_empty_event_and_still_sends_the_harness() {
        for stdin in [
            "",
            "   \n",
            "not json",
            "[1,2]",
            "\"str\"",
            "{\"a\":",
            "\u{feff}{}",
        ] {
            assert!(parse_event(stdin).is_empty(), "{stdin:?}");
        }
        assert_eq!(parse_event("\u{feff}{\"a\":1}\n").len(), 1);
        for hook in Hook::ALL {
            assert_eq!(
                request_body(hook, &options(), &Map::new()),
                json!({"harness": "claude-code"}),
                "{hook:?}"
            );
        }
        // Values of the wrong type are ignored, not sent.
        let e = event(json!({"session_id": 7, "cwd": null, "prompt": ["x"]}));
        assert_eq!(
            request_body(Hook::UserPromptSubmit, &options(), &e),
            json!({"harness": "claude-code"})
        );
    }

    #[test]
    fn each_hook_prints_its_part_of_the_reply() {
        let out = |hook, reply: Value| reply_text(hook, &reply).stdout;
        assert_eq!(
            out(Hook::SessionStart, json!({"inject": "ctx", "memories": []})).as_deref(),
            Some("ctx")
        );
        assert_eq!(
            out(
                Hook::UserPromptSubmit,
                json!({"inject": "hdr", "memoryCount": 0})
            )
            .as_deref(),
            Some("hdr")
        );
        assert_eq!(
            out(
                Hook::UserPromptSubmit,
                json!({"inject": "", "bypassed": true})
            ),
            None
        );
        assert_eq!(
            out(
                Hook::PreCompaction,
                json!({"summaryPrompt": "flush", "guidelines": "g"})
            )
            .as_deref(),
            Some("flush")
        );
        assert_eq!(
            out(
                Hook::PreCompaction,
                json!({"instructions": "", "bypassed": true})
            ),
            None
        );
        assert_eq!(
            out(Hook::Remember, json!({"saved": true, "id": "u-1"})).as_deref(),
            Some("u-1")
        );
        assert_eq!(
            out(
                Hook::Remember,
                json!({"success": true, "memories": [], "bypassed": true})
            ),
            None
        );
        assert_eq!(
            out(
                Hook::Recall,
                json!({"results": [{"id": "1", "content": "a"},
                                                 {"id": "2", "content": "b"}], "count": 2})
            )
            .as_deref(),
            Some("- a\n- b")
        );
        assert_eq!(out(Hook::Recall, json!({"memories": [], "count": 0})), None);
        assert_eq!(out(Hook::SessionEnd, json!({"memoriesSaved": 0})), None);
        assert_eq!(
            out(
                Hook::CompactionComplete,
                json!({"success": true, "memoryId": "m"})
            ),
            None
        );
        assert_eq!(out(Hook::SessionStart, Value::Null), None);
    }

    #[test]
    fn a_memory_the_daemon_did_not_save_is_reported_on_stderr() {
        let o = reply_text(Hook::Remember, &json!({"saved": false, "id": ""}));
        assert_eq!(o.stdout, None);
        assert_eq!(
            o.stderr.as_deref(),
            Some("[signet] hook remember failed: memory not saved")
        );
    }

    #[test]
    fn a_refusal_is_one_line_with_the_status_and_the_error_cut_at_200_chars() {
        use reqwest::StatusCode;
        assert_eq!(
            failure_line(
                Hook::Recall,
                StatusCode::CONFLICT,
                r#"{"error":"session claimed by plugin path"}"#
            ),
            "[signet] hook recall failed: HTTP 409: session claimed by plugin path"
        );
        let long = format!(r#"{{"error":"{}"}}"#, "é".repeat(300));
        let line = failure_line(Hook::SessionStart, StatusCode::BAD_REQUEST, &long);
        assert!(line.ends_with(&"é".repeat(200)), "{line}");
        assert!(!line.contains(&"é".repeat(201)));
        assert_eq!(
            failure_line(Hook::SessionEnd, StatusCode::BAD_GATEWAY, "upstream\ndown"),
            "[signet] hook session-end failed: HTTP 502: upstream down"
        );
        assert_eq!(
            failure_line(Hook::SessionEnd, StatusCode::SERVICE_UNAVAILABLE, ""),
            "[signet] hook session-end failed: HTTP 503: Service Unavailable"
        );
    }

    #[test]
    fn hooks_are_off_with_no_hooks_or_bypass() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!disabled(env(&[])));
        assert!(disabled(env(&[("SIGNET_NO_HOOKS", "1")])));
        assert!(disabled(env(&[("SIGNET_BYPASS", "true")])));
        assert!(!disabled(env(&[("SIGNET_NO_HOOKS", "0")])));
        assert!(!disabled(env(&[("SIGNET_BYPASS", "")])));
    }

    #[test]
    fn the_session_end_hook_waits_longest() {
        assert_eq!(Hook::SessionEnd.timeout(), Duration::from_secs(60));
        assert_eq!(Hook::UserPromptSubmit.timeout(), Duration::from_secs(5));
    }

    /// A one-shot HTTP server: answers `status` and `body` to the first
    /// request and hands back what it received.
    async fn one_reply(
        status: &'static str,
        body: &'static str,
    ) -> (Endpoint, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the body its content-length announces.
            loop {
                let n = sock.read(&mut buf).await.expect("read");
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(reply.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&seen).to_string()
        });
        let endpoint = Endpoint {
            base: format!("http://{addr}"),
            token: Some("tok".into()),
        };
        (endpoint, server)
    }

    #[tokio::test]
    async fn a_hook_posts_its_body_with_the_token_and_prints_the_inject() {
        let (endpoint, server) =
            one_reply("200 OK", r##"{"inject":"# Current Date","memoryCount":0}"##).await;
        let body = json!({"harness": "claude-code", "userPrompt": "hi"});
        let out = call(Hook::UserPromptSubmit, &endpoint, &body).await;
        assert_eq!(
            out,
            HookOutput {
                stdout: Some("# Current Date".into()),
                stderr: None
            }
        );
        let request = server.await.expect("server");
        assert!(
            request.starts_with("POST /api/hooks/user-prompt-submit HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request
            .to_ascii_lowercase()
            .contains("authorization: bearer tok\r\n"));
        assert!(request.ends_with(&body.to_string()), "{request}");
    }

    #[tokio::test]
    async fn a_refusing_daemon_gives_one_stderr_line_and_no_stdout() {
        let (endpoint, _server) = one_reply(
            "409 Conflict",
            r#"{"error":"session claimed by plugin path"}"#,
        )
        .await;
        let out = call(Hook::SessionStart, &endpoint, &json!({"harness": "x"})).await;
        assert_eq!(
            out,
            HookOutput {
                stdout: None,
                stderr: Some(
                    "[signet] hook session-start failed: HTTP 409: session claimed by plugin path"
                        .into()
                ),
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_daemon_that_never_answers_is_skipped_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = Endpoint {
            base: format!("http://{}", listener.local_addr().expect("addr")),
            token: None,
        };
        // Accept and hold the connection, answering nothing.
        let _silent = tokio::spawn(async move {
            let held = listener.accept().await;
            std::future::pending::<()>().await;
            drop(held);
        });
        let started = tokio::time::Instant::now();
        let out = call(Hook::SessionStart, &endpoint, &json!({"harness": "x"})).await;
        assert_eq!(out.stdout, None);
        assert_eq!(out.stderr.as_deref(), Some(SKIPPED));
        assert!(started.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_unreachable_daemon_is_skipped() {
        // Bind and drop: nothing listens on that port any more.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let endpoint = Endpoint {
            base: format!("http://{addr}"),
            token: None,
        };
        let out = call(Hook::Recall, &endpoint, &json!({"harness": "x"})).await;
        assert_eq!(out.stdout, None);
        assert_eq!(out.stderr.as_deref(), Some(SKIPPED));
    }
}
