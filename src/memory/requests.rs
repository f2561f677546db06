//! Typed requests of the memory operations and their validation.
//!
//! Bodies are deserialised with serde (wrong types are 400 at the edge);
//! the rules that serde cannot express (ranges, required reasons, prefix
//! parsing) live here, once, for every front.

use serde::Deserialize;

use super::{infer_type, Caller, MemoryError, KNOWN_TYPES};
use crate::store::memories::{content_hash, BatchSelector, ModifyRequest, NewMemory, Patch};
use crate::store::search::RecallFilter;

/// Tags as clients send them: a comma-joined string or an array.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TagsInput {
    Joined(String),
    List(Vec<String>),
}

impl TagsInput {
    /// Lowercased, trimmed, de-duplicated, comma-joined; `None` when empty.
    pub fn normalise(&self) -> Option<String> {
        let parts: Vec<String> = match self {
            TagsInput::Joined(s) => s.split(',').map(str::to_string).collect(),
            TagsInput::List(v) => v.clone(),
        };
        join_tags(parts.iter().map(String::as_str))
    }

    /// The individual tags.
    pub fn list(&self) -> Vec<String> {
        self.normalise()
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    }
}

fn join_tags<'a>(parts: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        let t = p.trim().to_lowercase();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    (!out.is_empty()).then(|| out.join(","))
}

/// Body of remember.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberRequest {
    pub content: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub importance: Option<f64>,
    pub tags: Option<TagsInput>,
    pub pinned: Option<bool>,
    pub who: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    #[serde(alias = "source_type")]
    pub source_type: Option<String>,
    #[serde(alias = "source_id")]
    pub source_id: Option<String>,
    pub wait_for_embedding: Option<bool>,
}

/// Split `critical: ` and `[a,b]: ` prefixes off content.
fn parse_prefixes(content: &str) -> (String, bool, Option<String>) {
    let mut rest = content.trim();
    let mut critical = false;
    let mut tags = None;
    loop {
        if rest
            .get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case("critical: "))
        {
            critical = true;
            rest = rest.get(10..).unwrap_or_default().trim_start();
            continue;
        }
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some(end) = inner.find("]: ") {
                tags = join_tags(inner[..end].split(','));
                rest = inner[end + 3..].trim_start();
                continue;
            }
        }
        break;
    }
    (rest.to_string(), critical, tags)
}

fn check_importance(i: f64) -> Result<f64, MemoryError> {
    if i.is_finite() && (0.0..=1.0).contains(&i) {
        Ok(i)
    } else {
        Err(MemoryError::BadRequest(
            "importance must be a number within 0..1".into(),
        ))
    }
}

fn check_content(c: &str, max: usize) -> Result<(), MemoryError> {
    if c.trim().is_empty() {
        return Err(MemoryError::BadRequest("content is required".into()));
    }
    if c.len() > max {
        return Err(MemoryError::TooLarge(format!(
            "content is {} bytes; the maximum is {max}",
            c.len()
        )));
    }
    Ok(())
}

/// A scope field: the caller's scope wins; a conflicting explicit value is
/// refused.
fn scoped(
    field: &str,
    given: Option<String>,
    scope: &Option<String>,
) -> Result<Option<String>, MemoryError> {
    match (given.filter(|g| !g.is_empty()), scope) {
        (Some(g), Some(s)) if &g != s => Err(MemoryError::Forbidden(format!(
            "{field} '{g}' is outside the token's scope"
        ))),
        (_, Some(s)) => Ok(Some(s.clone())),
        (g, None) => Ok(g),
    }
}

impl RememberRequest {
    /// Validate and build the record to insert.
    pub fn into_new_memory(self, caller: &Caller, max: usize) -> Result<NewMemory, MemoryError> {
        let raw = self.content.unwrap_or_default();
        check_content(&raw, max)?;
        let (content, critical, prefix_tags) = parse_prefixes(&raw);
        if content.is_empty() {
            return Err(MemoryError::BadRequest("content is required".into()));
        }
        let kind = match self.kind.as_deref().map(str::trim) {
            Some(k) if KNOWN_TYPES.contains(&k) => k.to_string(),
            _ => infer_type(&content).to_string(),
        };
        let importance = match self.importance {
            Some(i) => check_importance(i)?,
            None if critical => 1.0,
            None => 0.8,
        };
        let tags = match &self.tags {
            Some(t) => t.normalise(),
            None => prefix_tags,
        };
        let scope = &caller.scope;
        Ok(NewMemory {
            // v7: time-ordered, so the id index grows at its right edge.
            id: uuid::Uuid::now_v7().to_string(),
            content_hash: content_hash(&content),
            content,
            kind,
            importance,
            tags,
            pinned: self.pinned.unwrap_or(critical),
            who: self
                .who
                .filter(|w| !w.trim().is_empty())
                .unwrap_or_else(|| "daemon".into()),
            project: scoped("project", self.project, &scope.project)?,
            agent: scoped("agent", self.agent, &scope.agent)?,
            user: scoped("user", self.user, &scope.user)?,
            source_type: self
                .source_type
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "manual".into()),
            source_id: self.source_id.filter(|s| !s.is_empty()),
        })
    }
}

/// One edit of a memory, typed: `PATCH /api/memory/:id`, an item of batch
/// modify, an MCP `memory_modify` or a pipeline update. Unset fields are
/// left as they are; `tags: Some(None)` clears the tags. The domain layer
/// validates it ([`Edit::into_request`]).
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub id: String,
    pub reason: Option<String>,
    pub if_version: Option<i64>,
    pub content: Option<String>,
    pub kind: Option<String>,
    pub tags: Option<Option<TagsInput>>,
    pub importance: Option<f64>,
    pub pinned: Option<bool>,
    /// A body-supplied author, believed only without a token.
    pub changed_by: Option<String>,
}

fn opt_str(
    body: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<String>, String> {
    match body.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

/// `if_version`: a positive integer, if present.
pub fn parse_if_version(v: Option<&serde_json::Value>) -> Result<Option<i64>, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) if i > 0 => Ok(Some(i)),
            _ => Err("if_version must be a positive integer".into()),
        },
        Some(_) => Err("if_version must be a positive integer".into()),
    }
}

impl Edit {
    /// An edit of `id` from a JSON object (the HTTP shape); a field of the
    /// wrong type is an error naming it.
    pub fn from_json(
        id: String,
        b: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, String> {
        let tags = match b.get("tags") {
            None => None,
            Some(serde_json::Value::Null) => Some(None),
            Some(v) => Some(Some(
                serde_json::from_value::<TagsInput>(v.clone()).map_err(|_| {
                    "tags must be a string, an array of strings or null".to_string()
                })?,
            )),
        };
        let importance = match b.get("importance") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => Some(n.as_f64().unwrap_or(f64::NAN)),
            Some(_) => return Err("importance must be a number within 0..1".into()),
        };
        let pinned = match b.get("pinned") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Bool(p)) => Some(*p),
            Some(serde_json::Value::Number(n))
                if n.as_i64() == Some(0) || n.as_i64() == Some(1) =>
            {
                Some(n.as_i64() == Some(1))
            }
            Some(_) => return Err("pinned must be a boolean".into()),
        };
        Ok(Edit {
            id,
            reason: opt_str(b, "reason")?,
            if_version: parse_if_version(b.get("if_version"))?,
            content: opt_str(b, "content")?,
            kind: opt_str(b, "type")?,
            tags,
            importance,
            pinned,
            changed_by: opt_str(b, "changed_by")?,
        })
    }

    /// An item of a batch: an object with a string `id`. An error carries
    /// the id (if any) and the message.
    pub fn from_value(v: serde_json::Value) -> Result<Self, (String, String)> {
        let serde_json::Value::Object(body) = v else {
            return Err((String::new(), "each patch must be an object".into()));
        };
        match body.get("id") {
            Some(serde_json::Value::String(id)) if !id.is_empty() => {
                Edit::from_json(id.clone(), &body).map_err(|e| (id.clone(), e))
            }
            _ => Err((String::new(), "each patch needs a string id".into())),
        }
    }

    /// Validate into a store request plus the edit's `changed_by`.
    pub fn into_request(
        &self,
        caller: &Caller,
        default_reason: Option<&str>,
        max: usize,
    ) -> Result<(ModifyRequest, Option<String>), MemoryError> {
        let reason = self
            .reason
            .clone()
            .or_else(|| default_reason.map(str::to_string))
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| MemoryError::BadRequest("reason is required".into()))?;
        if self.if_version.is_some_and(|v| v < 1) {
            return Err(MemoryError::BadRequest(
                "if_version must be a positive integer".into(),
            ));
        }
        if let Some(c) = &self.content {
            check_content(c, max)?;
        }
        if let Some(k) = &self.kind {
            if !KNOWN_TYPES.contains(&k.as_str()) {
                return Err(MemoryError::BadRequest(format!("unknown type '{k}'")));
            }
        }
        let importance = self.importance.map(check_importance).transpose()?;
        Ok((
            ModifyRequest {
                id: self.id.clone(),
                patch: Patch {
                    content: self.content.as_ref().map(|c| c.trim().to_string()),
                    kind: self.kind.clone(),
                    tags: self
                        .tags
                        .as_ref()
                        .map(|t| t.as_ref().and_then(TagsInput::normalise)),
                    importance,
                    pinned: self.pinned,
                },
                reason,
                if_version: self.if_version,
                scope: caller.scope.clone(),
            },
            self.changed_by.clone(),
        ))
    }
}

/// Body of recall (and the query of `GET /api/memory/search`).
#[derive(Debug, Clone, Default)]
pub struct RecallRequest {
    pub query: String,
    pub limit: Option<i64>,
    pub filter: RecallFilter,
    /// Text embedded for the vector leg instead of `query`.
    pub vector_text: Option<String>,
    /// Longest wait for a query embedding the model has not cached; past
    /// it (or with all cores but one already embedding) the keyword leg answers
    /// alone. `None`: wait as long as the provider takes.
    pub vector_wait: Option<std::time::Duration>,
}

/// The JSON shape of a recall body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RecallBody {
    pub query: Option<String>,
    pub q: Option<String>,
    pub limit: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub tags: Option<TagsInput>,
    pub who: Option<String>,
    pub pinned: Option<bool>,
    pub importance_min: Option<f64>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub project: Option<String>,
}

impl From<RecallBody> for RecallRequest {
    fn from(b: RecallBody) -> Self {
        RecallRequest {
            query: b.query.or(b.q).unwrap_or_default(),
            limit: b.limit,
            filter: RecallFilter {
                kind: b.kind,
                tags: b.tags.map(|t| t.list()).unwrap_or_default(),
                who: b.who,
                pinned: b.pinned,
                importance_min: b.importance_min,
                since: b.since,
                until: b.until,
                project: b.project,
                ..RecallFilter::default()
            },
            vector_text: None,
            vector_wait: None,
        }
    }
}

/// Body of `POST /api/memory/forget`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchForgetRequest {
    pub mode: Option<String>,
    pub query: Option<String>,
    pub ids: Option<Vec<String>>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub tags: Option<TagsInput>,
    pub who: Option<String>,
    pub source_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub if_version: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub confirm_token: Option<String>,
}

/// A checked batch forget.
#[derive(Debug, Clone)]
pub struct ValidForget {
    pub execute: bool,
    pub query: Option<String>,
    pub selector: BatchSelector,
    pub reason: Option<String>,
    pub confirm_token: Option<String>,
}

impl BatchForgetRequest {
    /// Check mode, selectors and limit.
    pub fn validated(self) -> Result<ValidForget, MemoryError> {
        let bad = |m: &str| MemoryError::BadRequest(m.to_string());
        if self.if_version.is_some() {
            return Err(bad(
                "if_version is not supported by batch forget; use DELETE /api/memory/:id",
            ));
        }
        let execute = match self.mode.as_deref() {
            None | Some("preview") => false,
            Some("execute") => true,
            Some(_) => return Err(bad("mode must be preview or execute")),
        };
        let limit = self.limit.unwrap_or(20);
        if !(1..=200).contains(&limit) {
            return Err(bad("limit must be 1..200"));
        }
        let query = self.query.filter(|q| !q.trim().is_empty());
        let tags = self.tags.map(|t| t.list()).unwrap_or_default();
        let has_selector = query.is_some()
            || self.ids.is_some()
            || self.kind.is_some()
            || !tags.is_empty()
            || self.who.is_some()
            || self.source_type.is_some()
            || self.since.is_some()
            || self.until.is_some();
        if !has_selector {
            return Err(bad("at least one selector (query, ids, type, tags, who, source_type, since, until) is required"));
        }
        if self.ids.as_ref().is_some_and(|i| i.len() > 200) {
            return Err(bad("at most 200 ids"));
        }
        Ok(ValidForget {
            execute,
            query,
            selector: BatchSelector {
                ids: self.ids,
                kind: self.kind,
                tags,
                who: self.who,
                source_type: self.source_type,
                since: self.since,
                until: self.until,
                limit,
                scope: Default::default(),
            },
            reason: self.reason,
            confirm_token: self.confirm_token,
        })
    }
}

/// Ratings of recalled memories (`POST /api/memory/feedback`, Signet's
/// shape): `{sessionKey, feedback: {memoryId: number}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRequest {
    pub session_key: String,
    /// (memory id, rating clamped to [-1, 1]); non-numbers are skipped.
    pub ratings: Vec<(String, f64)>,
}

impl FeedbackRequest {
    /// Validate a feedback body with Signet's error messages.
    pub fn parse(body: &serde_json::Value) -> Result<Self, String> {
        let key = body
            .get("sessionKey")
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let map = body.get("feedback").and_then(|v| v.as_object());
        let (Some(key), Some(map)) = (key, map) else {
            return Err("sessionKey and feedback required".into());
        };
        if key.chars().count() > 256 {
            return Err("sessionKey must be at most 256 characters".into());
        }
        let ratings: Vec<(String, f64)> = map
            .iter()
            .filter_map(|(id, v)| {
                let x = v.as_f64().filter(|x| x.is_finite())?;
                Some((id.clone(), x.clamp(-1.0, 1.0)))
            })
            .take(1000)
            .collect();
        if ratings.is_empty() {
            return Err(
                "Invalid feedback format \u{2014} expected map of ID to number (-1 to 1)".into(),
            );
        }
        Ok(FeedbackRequest {
            session_key: key.to_string(),
            ratings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_set_pinned_importance_and_tags_unless_the_body_says_otherwise() {
        let c = Caller::default();
        let m = RememberRequest {
            content: Some("critical: [Ops, DB]: never drop prod".into()),
            ..Default::default()
        }
        .into_new_memory(&c, 1000)
        .expect("valid");
        assert!(m.pinned);
        assert_eq!(m.importance, 1.0);
        assert_eq!(m.tags.as_deref(), Some("ops,db"));
        assert_eq!(m.content, "never drop prod");
        assert_eq!(m.kind, "rule");

        let m = RememberRequest {
            content: Some("critical: x".into()),
            importance: Some(0.3),
            pinned: Some(false),
            tags: Some(TagsInput::List(vec!["A".into()])),
            ..Default::default()
        }
        .into_new_memory(&c, 1000)
        .expect("valid");
        assert!(!m.pinned);
        assert_eq!(m.importance, 0.3);
        assert_eq!(m.tags.as_deref(), Some("a"));
    }

    #[test]
    fn prefixes_are_parsed_on_character_boundaries() {
        assert_eq!(parse_prefixes("aéééééé du texte").0, "aéééééé du texte");
        assert_eq!(
            parse_prefixes("日本語のメモです、大事").0,
            "日本語のメモです、大事"
        );
        let (c, crit, tags) = parse_prefixes("[é,Ü]: ünï");
        assert_eq!(
            (c.as_str(), crit, tags.as_deref()),
            ("ünï", false, Some("é,ü"))
        );
    }

    #[test]
    fn bad_remember_bodies_are_refused() {
        let c = Caller::default();
        let req = |content: &str| RememberRequest {
            content: Some(content.into()),
            ..Default::default()
        };
        assert!(matches!(
            req("   ").into_new_memory(&c, 100),
            Err(MemoryError::BadRequest(_))
        ));
        assert!(matches!(
            req(&"x".repeat(101)).into_new_memory(&c, 100),
            Err(MemoryError::TooLarge(_))
        ));
        let mut r = req("ok");
        r.importance = Some(1.5);
        assert!(matches!(
            r.into_new_memory(&c, 100),
            Err(MemoryError::BadRequest(_))
        ));
    }

    #[test]
    fn a_scoped_caller_stamps_its_scope_and_refuses_a_conflict() {
        let c = Caller {
            scope: crate::store::Scope {
                project: Some("a".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let m = RememberRequest {
            content: Some("x".into()),
            ..Default::default()
        }
        .into_new_memory(&c, 100)
        .expect("ok");
        assert_eq!(m.project.as_deref(), Some("a"));
        let r = RememberRequest {
            content: Some("x".into()),
            project: Some("b".into()),
            ..Default::default()
        };
        assert!(matches!(
            r.into_new_memory(&c, 100),
            Err(MemoryError::Forbidden(_))
        ));
    }
}
