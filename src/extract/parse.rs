//! Parsing LLM replies: strip `<think>` blocks and code fences, find the
//! first JSON value, check its shape. Bad input is an `Err`, never a panic.

use serde::{Deserialize, Serialize};

/// One extracted fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub content: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn default_confidence() -> f64 {
    0.0
}

/// What to do with a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Add,
    Update,
    Delete,
    None,
}

/// The LLM's decision for one fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub action: Action,
    #[serde(default, alias = "target_id", alias = "id")]
    pub target_id: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Remove `<think>...</think>` blocks (an unclosed one runs to the end).
pub fn strip_think(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("<think>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</think>") {
            Some(end) => rest = &rest[start + end + "</think>".len()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The first JSON object or array in `text`, after removing `<think>`
/// blocks; code fences and prose around it are skipped.
pub fn first_json(text: &str) -> Result<serde_json::Value, String> {
    let cleaned = strip_think(text);
    for (i, c) in cleaned.char_indices() {
        if c != '{' && c != '[' {
            continue;
        }
        let mut stream =
            serde_json::Deserializer::from_str(&cleaned[i..]).into_iter::<serde_json::Value>();
        if let Some(Ok(v)) = stream.next() {
            if v.is_object() || v.is_array() {
                return Ok(v);
            }
        }
    }
    Err(format!(
        "no JSON object in the reply: {:?}",
        cleaned.chars().take(120).collect::<String>()
    ))
}

/// Facts from a reply: `{"facts": [...]}` or a bare list. Facts with empty
/// content or a confidence outside 0..1 are refused.
pub fn facts(reply: &str) -> Result<Vec<Fact>, String> {
    let v = first_json(reply)?;
    let list = match v {
        serde_json::Value::Array(_) => v,
        serde_json::Value::Object(mut o) => o
            .remove("facts")
            .ok_or_else(|| "reply has no \"facts\" list".to_string())?,
        _ => return Err("reply is not an object or list".into()),
    };
    let facts: Vec<Fact> =
        serde_json::from_value(list).map_err(|e| format!("facts have the wrong shape: {e}"))?;
    if let Some(f) = facts
        .iter()
        .find(|f| f.content.trim().is_empty() || !(0.0..=1.0).contains(&f.confidence))
    {
        return Err(format!("invalid fact: {f:?}"));
    }
    Ok(facts)
}

/// A decision from a reply.
pub fn decision(reply: &str) -> Result<Decision, String> {
    let v = first_json(reply)?;
    let d: Decision =
        serde_json::from_value(v).map_err(|e| format!("decision has the wrong shape: {e}"))?;
    if d.action == Action::Update && d.content.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err("UPDATE without content".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        r#"{"facts":[{"content":"Prefers tabs","type":"preference","confidence":0.9}]}"#;

    #[test]
    fn plain_fenced_think_and_prose_wrapped_json_parse() {
        let want = facts(GOOD).expect("plain");
        assert_eq!(want[0].content, "Prefers tabs");
        for wrapped in [
            format!("```json\n{GOOD}\n```"),
            format!("<think>the user said {{maybe}} [x]</think>\n{GOOD}"),
            format!("<think>a</think>Sure! Here you go:\n```\n{GOOD}\n```\nAnything else?"),
            format!("[{}]", &GOOD[10..GOOD.len() - 2]),
        ] {
            assert_eq!(facts(&wrapped).expect("wrapped"), want, "{wrapped}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "no json here",
            "<think>only thinking {\"facts\": []}",
            "{\"facts\": \"nope\"}",
            "{\"facts\": [{\"content\": \"\", \"confidence\": 0.9}]}",
            "{\"facts\": [{\"content\": \"x\", \"confidence\": 7}]}",
            "{\"other\": 1}",
            "{{{{[[[[",
            "\u{0}\u{ffff}",
        ] {
            assert!(facts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decisions_parse_and_update_needs_content() {
        let d =
            decision(r#"<think>hm</think>{"action":"UPDATE","targetId":"a","content":"merged"}"#)
                .expect("update");
        assert_eq!(
            (d.action, d.target_id.as_deref()),
            (Action::Update, Some("a"))
        );
        assert_eq!(
            decision(r#"{"action":"NONE"}"#).expect("none").action,
            Action::None
        );
        assert!(decision(r#"{"action":"UPDATE","targetId":"a"}"#).is_err());
        assert!(decision(r#"{"action":"MERGE"}"#).is_err());
        assert!(decision("ADD").is_err());
    }
}
