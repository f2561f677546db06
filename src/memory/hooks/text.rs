//! The text work of the hooks, as plain functions: cleaning a prompt of
//! untrusted metadata, picking its search terms, redacting secrets from
//! checkpoints, normalising transcripts, and the date and duration formats
//! of the inject (`SPEC-agents.md` §1.2, §1.3, §2).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::store::fts::is_stop_word;

/// Markers of metadata blocks chat gateways prepend to a prompt; each may
/// be followed by a `{…}` object. Compared lowercase.
const UNTRUSTED_MARKERS: &[&str] = &[
    "conversation info (untrusted metadata):",
    "sender (untrusted",
    "chat history since last reply:",
    "<<<external_untrusted_content",
    "end_external_untrusted_content",
    "untrusted context:",
];

static MENTION: LazyLock<Regex> = LazyLock::new(|| re(r"<@!?\d+>"));
static HYPHENATED: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)+"));
static NON_WORD: LazyLock<Regex> = LazyLock::new(|| re(r"\W+"));
static RECALL_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\[signet:recall[^\n]*$"));
static FEEDBACK_BLOCK: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)<memory-feedback>.*?</memory-feedback>"));

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file, checked by its tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

/// Most terms one prompt searches for.
pub const MAX_TERMS: usize = 12;

/// Remove gateway metadata blocks (each marker and the `{…}` object after
/// it) and `<@123>` mentions.
pub fn clean_prompt(text: &str) -> String {
    let mut out = text.to_string();
    for marker in UNTRUSTED_MARKERS {
        loop {
            let lower = out.to_lowercase();
            // Lowercasing can change byte lengths outside ASCII; only cut
            // where the offsets agree.
            let Some(at) = lower.find(marker) else { break };
            if lower.len() != out.len() || !out.is_char_boundary(at) {
                break;
            }
            // A marker without its colon (`Sender (untrusted`) runs to the
            // next colon of its line (`… metadata):`); then an optional
            // JSON object may follow.
            let line_end = if marker.ends_with(':') {
                at + marker.len()
            } else {
                let line = out[at..].find('\n').map_or(out.len(), |i| at + i);
                out[at..line].find(':').map_or(line, |i| at + i + 1)
            };
            let mut end = line_end;
            let rest = &out[line_end..];
            let skipped = rest.len() - rest.trim_start().len();
            let rest = rest.trim_start();
            let rest = rest
                .strip_prefix("```json")
                .or_else(|| rest.strip_prefix("```"));
            let (fence, body_at) = match rest {
                Some(r) => (true, out.len() - r.len()),
                None => (false, line_end + skipped),
            };
            let body = out[body_at..].trim_start();
            if body.starts_with('{') {
                if let Some(len) = object_len(body) {
                    end = out.len() - body.len() + len;
                    if fence {
                        if let Some(close) = out[end..].find("```") {
                            if out[end..end + close].trim().is_empty() {
                                end += close + 3;
                            }
                        }
                    }
                }
            }
            out.replace_range(at..end, "");
        }
    }
    MENTION.replace_all(&out, "").trim().to_string()
}

/// Byte length of the JSON-ish object at the start of `s` (braces
/// balanced outside strings), if it closes.
fn object_len(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Content words of `text`: hyphenated identifiers first (lowercased),
/// then `\W+`-separated words of three or more characters that are not all
/// digits and not stop words; no repeats.
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !out.contains(&w) {
            out.push(w);
        }
    };
    for m in HYPHENATED.find_iter(text) {
        push(m.as_str().to_lowercase());
    }
    for w in NON_WORD.split(text) {
        let w = w.to_lowercase();
        if w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()) && !is_stop_word(&w) {
            push(w);
        }
    }
    out
}

/// The search terms of a prompt: the user's words, then up to
/// `max(2, #user terms)` new words of the assistant's last message (its
/// recall header and feedback block removed); at most [`MAX_TERMS`].
pub fn prompt_terms(user: &str, assistant: Option<&str>) -> Vec<String> {
    let mut terms = words(user);
    terms.truncate(MAX_TERMS);
    if let Some(a) = assistant {
        let a = FEEDBACK_BLOCK.replace_all(a, " ");
        let a = RECALL_LINE.replace_all(&a, " ");
        let room = terms.len().max(2);
        let extra: Vec<String> = words(&a)
            .into_iter()
            .filter(|w| !terms.contains(w))
            .take(room)
            .collect();
        terms.extend(extra);
        terms.truncate(MAX_TERMS);
    }
    terms
}

/// The first `n` characters of `s`.
pub fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s` cut to `cap` UTF-16 units with `\n[truncated]` appended when cut
/// (Signet counts JavaScript string lengths).
pub fn cap_utf16(s: &str, cap: usize) -> String {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > cap {
            return format!("{}\n[truncated]", &s[..i]);
        }
    }
    s.to_string()
}

/// Length in UTF-16 units (how Signet's budgets count).
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

static SECRET_PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Authorization headers and bare bearer tokens.
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
        // Well-known variables, whatever their value looks like.
        r"\b(?:[A-Z0-9_]*_API_KEY|GITHUB_TOKEN|NPM_TOKEN|AWS_SECRET(?:_ACCESS_KEY)?)\s*[=:]\s*\S+",
        // $VAR=value and export VAR=value.
        r"\$[A-Za-z_][A-Za-z0-9_]*=\S+",
        // api_key: ..., password=..., token="...", sk-... (value ≥ 8 chars).
        r#"(?i)\b(?:sk|pk|api[_-]?key|token|secret|password|passwd|credential)s?(?:[-_][A-Za-z0-9]+)*["']?\s*[:=-]\s*["']?[A-Za-z0-9._~+/=-]{8,}"#,
        // Long base64-like runs.
        r"[A-Za-z0-9+/=_-]{32,}",
    ]
    .iter()
    .map(|p| re(p))
    .collect()
});

/// "password is hunter22", "token abc123def": a secret word, then a value
/// of 8 or more characters that holds a digit (prose such as "token
/// expiration" stays).
static SECRET_IN_PROSE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:sk|pk|api[_-]?key|token|secret|password|passwd|credential)s?\s+(?:is\s+|was\s+)?([A-Za-z0-9._~+/=-]{8,})",
    )
});

/// `text` with secrets replaced by `[REDACTED]` (checkpoint digests and
/// remembered snippets, when stored and when served).
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for p in SECRET_PATTERNS.iter() {
        if p.is_match(&out) {
            out = p.replace_all(&out, "[REDACTED]").into_owned();
        }
    }
    SECRET_IN_PROSE
        .replace_all(&out, |c: &regex::Captures<'_>| {
            let value = c.get(1).map_or("", |m| m.as_str());
            if value.chars().any(|ch| ch.is_ascii_digit()) {
                "[REDACTED]".to_string()
            } else {
                c.get(0).map_or("", |m| m.as_str()).to_string()
            }
        })
        .into_owned()
}

/// Signet's `NOW`: `Monday, January 6, 2025 at 3:04 PM` in the daemon's
/// time zone.
pub fn now_text(now: DateTime<Utc>) -> String {
    now.with_timezone(&chrono::Local)
        .format("%A, %B %-d, %Y at %-I:%M %p")
        .to_string()
}

/// The daemon's IANA time zone name (`UTC` when it cannot be told), read
/// once: every inject names it.
pub fn time_zone() -> &'static str {
    static ZONE: LazyLock<String> = LazyLock::new(|| {
        std::env::var("TZ")
            .ok()
            .map(|t| t.trim_start_matches(':').to_string())
            .filter(|t| !t.is_empty() && !t.starts_with('/'))
            .or_else(|| iana_time_zone::get_timezone().ok())
            .unwrap_or_else(|| "UTC".into())
    });
    &ZONE
}

/// Signet's `DATE(x)`: `Jan 6, 2025` in the daemon's time zone; the input
/// unchanged if it is no timestamp.
pub fn short_date(iso: &str) -> String {
    match DateTime::parse_from_rfc3339(iso) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format("%b %-d, %Y")
            .to_string(),
        Err(_) => iso.to_string(),
    }
}

/// `seen just now`-style age: `just now`, `Nm ago`, `Nh ago`, `Nd ago`.
pub fn ago(d: chrono::Duration) -> String {
    let m = d.num_minutes();
    if m < 1 {
        "just now".into()
    } else if m < 60 {
        format!("{m}m ago")
    } else if m < 24 * 60 {
        format!("{}h ago", m / 60)
    } else {
        format!("{}d ago", m / (24 * 60))
    }
}

/// A checkpoint's duration: `Nm`, `Nh` or `Nh Mm`.
pub fn duration_label(d: chrono::Duration) -> String {
    let m = d.num_minutes().max(0);
    match (m / 60, m % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// A peer-session field made safe for the inject: newlines, backticks and
/// `*#[]<>` become spaces.
pub fn sanitise_field(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '`' | '*' | '#' | '[' | ']' | '<' | '>' => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Longest transcript queued for summarising, in characters.
pub const MAX_TRANSCRIPT_CHARS: usize = 100_000;
/// Shorter transcripts are not worth a summary.
pub const MIN_TRANSCRIPT_CHARS: usize = 500;

/// A harness transcript as `User: …` / `Assistant: …` lines. JSONL
/// transcripts (≥ 60 % of non-empty lines JSON objects) are read for their
/// role and text; `codex` keeps user and agent messages only; other text
/// is used as it is.
pub fn normalise_transcript(raw: &str, harness: &str) -> String {
    let lines: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let jsonl = !lines.is_empty() && parsed.len() * 10 >= lines.len() * 6;
    if !jsonl {
        return raw.trim().to_string();
    }
    let mut out = Vec::new();
    for v in &parsed {
        // Claude Code nests the turn under `message`; others are flat.
        let msg = v.get("message").filter(|m| m.is_object()).unwrap_or(v);
        let payload = v.get("payload").filter(|m| m.is_object());
        let role = msg
            .get("role")
            .or_else(|| v.get("type"))
            .or_else(|| msg.get("speaker"))
            .or_else(|| payload.and_then(|p| p.get("role")))
            .and_then(|r| r.as_str())
            .unwrap_or_default()
            .to_lowercase();
        let who = match role.as_str() {
            "user" | "human" | "user_message" => "User",
            "assistant" | "agent" | "ai" | "model" | "agent_message" => "Assistant",
            _ => continue,
        };
        if harness == "codex" && !matches!(role.as_str(), "user_message" | "agent_message") {
            // Codex sessions also log tool calls and reasoning.
            if payload.is_none() && !matches!(role.as_str(), "user" | "assistant") {
                continue;
            }
        }
        let text = content_text(
            msg.get("content")
                .or_else(|| msg.get("text"))
                .or_else(|| msg.get("message"))
                .or_else(|| payload.and_then(|p| p.get("content").or_else(|| p.get("message")))),
        );
        if !text.trim().is_empty() {
            out.push(format!("{who}: {}", text.trim()));
        }
    }
    out.join("\n")
}

/// The text of a message's content: a string, or the `text` of its parts.
pub fn content_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| {
                p.as_str()
                    .or_else(|| p.get("text").and_then(|t| t.as_str()))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_blocks_and_mentions_are_cleaned() {
        let p = "Conversation info (untrusted metadata):\n```json\n{\"chat\": \"x {y}\"}\n```\n\
                 <@12345> how do we deploy the billing-service?";
        assert_eq!(clean_prompt(p), "how do we deploy the billing-service?");
        let p = "Sender (untrusted metadata): {\"name\": \"bob\"}\nwhat about postgres";
        assert_eq!(clean_prompt(p), "what about postgres");
        // A marker with no object is removed alone.
        assert_eq!(
            clean_prompt("UNTRUSTED CONTEXT:\nplain words"),
            "plain words"
        );
        // An unclosed object is left (nothing to match), the marker goes.
        assert_eq!(clean_prompt("untrusted context: {oops"), "{oops");
    }

    #[test]
    fn terms_follow_signets_rules() {
        let t = prompt_terms(
            "How do I deploy the billing-service to K8s in 2024? Thanks!",
            None,
        );
        assert_eq!(
            t,
            vec!["billing-service", "deploy", "billing", "service", "k8s"]
        );
        // Stop words and numbers only: nothing.
        assert!(prompt_terms("what is 12345 ok?", None).is_empty());
        // The assistant adds at most max(2, #user) new words, after its
        // recall header and feedback block are dropped.
        let t = prompt_terms(
            "postgres",
            Some("[signet:recall | query=\"zzz\"]\n<memory-feedback>IDs: qqq</memory-feedback>\nUse pgbouncer with replicas and failover"),
        );
        assert_eq!(t, vec!["postgres", "pgbouncer", "replicas"]);
        let many = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike";
        assert_eq!(prompt_terms(many, Some("november oscar")).len(), MAX_TERMS);
    }

    #[test]
    fn secrets_are_redacted() {
        let s = redact("curl -H 'Authorization: Bearer abc.def.ghi123' and OPENAI_API_KEY=sk-123");
        assert!(!s.contains("abc.def"), "{s}");
        assert!(!s.contains("sk-123"), "{s}");
        let s = redact("password: hunter2hunter2 then $DB_PASS=xyz");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains("xyz"), "{s}");
        let s = redact("my password is hunter2hunter2, the token sk-abcdefghijklmnop");
        assert!(
            !s.contains("hunter2") && !s.contains("abcdefghijklmnop"),
            "{s}"
        );
        let prose = "the token expiration and password management pages";
        assert_eq!(redact(prose), prose);
        let s = redact("blob QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk= end");
        assert_eq!(s, "blob [REDACTED] end");
        let plain = "We decided to use postgres for the billing service.";
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn caps_count_utf16_units() {
        assert_eq!(cap_utf16("abcdef", 6), "abcdef");
        assert_eq!(cap_utf16("abcdef", 4), "abcd\n[truncated]");
        // An emoji is two units.
        assert_eq!(cap_utf16("a😀b", 2), "a\n[truncated]");
        assert_eq!(utf16_len("a😀b"), 4);
        assert_eq!(first_chars("héllo", 2), "hé");
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(duration_label(chrono::Duration::minutes(5)), "5m");
        assert_eq!(duration_label(chrono::Duration::minutes(120)), "2h");
        assert_eq!(duration_label(chrono::Duration::minutes(135)), "2h 15m");
        assert_eq!(ago(chrono::Duration::seconds(10)), "just now");
        assert_eq!(ago(chrono::Duration::minutes(7)), "7m ago");
        assert_eq!(ago(chrono::Duration::hours(3)), "3h ago");
        assert_eq!(ago(chrono::Duration::days(2)), "2d ago");
        assert_eq!(sanitise_field("a\n`b`*#[c]<d>"), "a  b    c  d");
    }

    #[test]
    fn transcripts_are_normalised() {
        let jsonl = [
            r#"{"type":"user","message":{"role":"user","content":"fix the login bug"}}"#,
            r#"{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"Done: the cookie was stale."}]}}"#,
            r#"{"type":"summary","summary":"x"}"#,
        ]
        .join("\n");
        assert_eq!(
            normalise_transcript(&jsonl, "claude-code"),
            "User: fix the login bug\nAssistant: Done: the cookie was stale."
        );
        assert_eq!(normalise_transcript("  plain text  ", "x"), "plain text");
    }

    #[test]
    fn now_text_has_signets_shape() {
        let t = DateTime::parse_from_rfc3339("2025-01-06T15:04:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let s = now_text(t);
        assert!(s.contains(", 2025 at "), "{s}");
        assert!(s.ends_with("AM") || s.ends_with("PM"), "{s}");
    }
}
