//! The live state of harness sessions: runtime-path claims, presence,
//! bypass, the session-start dedup mark, the prompt hook's repeat window
//! and the continuity counters that decide periodic checkpoints.
//!
//! A plain type behind one mutex (every operation is a few map lookups, no
//! I/O under the lock). Like Signet's, it survives nothing: a restart
//! forgets claims, presence and windows, which costs a harness one full
//! session-start inject and possibly one repeated memory; what must outlive
//! the process (checkpoints, summaries) is in the store.
//!
//! Sessions are keyed by the caller's scope and the session key, so a
//! scoped token can neither see, claim, bypass nor end the session of
//! another scope that happens to use the same key. Unscoped callers (local
//! mode, admin and unscoped tokens) see every session.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::ContinuitySettings;
use crate::store::Scope;

/// How long a claim and presence last without a refresh.
pub const SESSION_TTL: Duration = Duration::hours(4);
/// Sessions tracked at most; the least recently seen go first.
pub const MAX_SESSIONS: usize = 10_000;
/// Prompt snippets, queries and remembers kept per session for checkpoints.
const KEEP_SNIPPETS: usize = 10;
const KEEP_QUERIES: usize = 20;
const KEEP_REMEMBERS: usize = 10;
/// Peers listed in a session-start inject at most.
pub const MAX_PEERS: usize = 6;

/// The two runtime paths a session can be claimed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimePath {
    Plugin,
    Legacy,
}

impl RuntimePath {
    /// Parse a wire value; `None` for anything else.
    pub fn parse(s: &str) -> Option<RuntimePath> {
        match s.trim() {
            "plugin" => Some(RuntimePath::Plugin),
            "legacy" => Some(RuntimePath::Legacy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimePath::Plugin => "plugin",
            RuntimePath::Legacy => "legacy",
        }
    }
}

#[derive(Debug, Clone)]
struct Claim {
    path: RuntimePath,
    claimed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// What the checkpoints of a session are written from.
#[derive(Debug, Clone, Default)]
pub struct Continuity {
    pub prompts: u32,
    pub since_checkpoint: u32,
    pub last_checkpoint: Option<DateTime<Utc>>,
    pub queries: VecDeque<String>,
    pub snippets: VecDeque<String>,
    pub remembers: VecDeque<String>,
}

#[derive(Debug, Clone)]
struct Session {
    key: String,
    seq: u64,
    scope: Scope,
    harness: String,
    agent_id: String,
    project: Option<String>,
    claim: Option<Claim>,
    bypassed: bool,
    served: bool,
    started_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    /// Memory ids injected by each of the last prompts, newest last.
    window: VecDeque<Vec<String>>,
    continuity: Continuity,
}

/// Who is touching a session (from the hook request and its caller).
#[derive(Debug, Clone)]
pub struct Touch<'a> {
    pub scope: &'a Scope,
    pub key: &'a str,
    pub harness: &'a str,
    pub agent_id: Option<&'a str>,
    pub project: Option<&'a str>,
}

/// A session as `GET /api/sessions` shows it: Signet's fields first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub key: String,
    /// The claiming runtime path; `null` for a session nobody claimed
    /// (Claude Code's CLI hooks never claim).
    pub runtime_path: Option<RuntimePath>,
    pub claimed_at: Option<String>,
    pub bypassed: bool,
    pub harness: String,
    pub agent_id: String,
    pub project: Option<String>,
    pub started_at: String,
    pub last_seen_at: String,
    pub prompts: u32,
}

/// Another live session of the same project (the inject's peer list).
#[derive(Debug, Clone)]
pub struct Peer {
    pub agent_id: String,
    pub harness: String,
    pub project: Option<String>,
    pub key: String,
    pub last_seen: DateTime<Utc>,
}

/// A checkpoint that is due, with what it is written from.
#[derive(Debug, Clone)]
pub struct Due {
    pub harness: String,
    pub project: Option<String>,
    pub started_at: DateTime<Utc>,
    pub continuity: Continuity,
}

/// Every live session.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<String, Session>,
    /// Project → its sessions by (last seen, seq) → map key: the peer
    /// lookup reads the most recently seen first and stops after six.
    by_project: HashMap<String, BTreeMap<(DateTime<Utc>, u64), String>>,
    seq: u64,
}

/// Where a session sits in the project index.
type Slot = (Option<String>, DateTime<Utc>, u64);

impl Inner {
    fn slot(&self, k: &str) -> Option<Slot> {
        self.by_key
            .get(k)
            .map(|s| (s.project.clone(), s.last_seen, s.seq))
    }

    fn index(&mut self, (project, seen, seq): Slot, k: &str) {
        if let Some(p) = project {
            self.by_project
                .entry(p)
                .or_default()
                .insert((seen, seq), k.to_string());
        }
    }

    fn unindex(&mut self, (project, seen, seq): Slot) {
        if let Some(p) = project {
            if let Some(tree) = self.by_project.get_mut(&p) {
                tree.remove(&(seen, seq));
                if tree.is_empty() {
                    self.by_project.remove(&p);
                }
            }
        }
    }

    fn remove(&mut self, k: &str) -> Option<Session> {
        let slot = self.slot(k)?;
        self.unindex(slot);
        self.by_key.remove(k)
    }
}

fn map_key(scope: &Scope, key: &str) -> String {
    if scope.is_unscoped() {
        format!("\u{0}{key}")
    } else {
        format!(
            "{}\u{1}{}\u{1}{}\u{0}{key}",
            scope.project.as_deref().unwrap_or(""),
            scope.agent.as_deref().unwrap_or(""),
            scope.user.as_deref().unwrap_or("")
        )
    }
}

fn iso(t: DateTime<Utc>) -> String {
    crate::store::to_iso(t)
}

fn push_capped(q: &mut VecDeque<String>, v: String, cap: usize) {
    q.push_back(v);
    while q.len() > cap {
        q.pop_front();
    }
}

impl Session {
    fn live_claim(&self, now: DateTime<Utc>) -> Option<&Claim> {
        self.claim.as_ref().filter(|c| c.expires_at > now)
    }

    fn info(&self, now: DateTime<Utc>) -> SessionInfo {
        let claim = self.live_claim(now);
        SessionInfo {
            key: self.key.clone(),
            runtime_path: claim.map(|c| c.path),
            claimed_at: claim.map(|c| iso(c.claimed_at)),
            bypassed: self.bypassed,
            harness: self.harness.clone(),
            agent_id: self.agent_id.clone(),
            project: self.project.clone(),
            started_at: iso(self.started_at),
            last_seen_at: iso(self.last_seen),
            prompts: self.continuity.prompts,
        }
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic under the lock leaves plain maps behind: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The claim check of every hook but session-start and session-end:
    /// `Err(owner)` when another runtime path holds a live claim on the key.
    pub fn check_claim(
        &self,
        scope: &Scope,
        key: &str,
        path: Option<RuntimePath>,
        now: DateTime<Utc>,
    ) -> Result<(), RuntimePath> {
        let Some(path) = path else { return Ok(()) };
        let inner = self.lock();
        match inner
            .by_key
            .get(&map_key(scope, key))
            .and_then(|s| s.live_claim(now))
        {
            Some(c) if c.path != path => Err(c.path),
            _ => Ok(()),
        }
    }

    /// Upsert the session's presence (creating it), and for session-start
    /// with a runtime path, claim it: `Err(owner)` when the other path
    /// holds a live claim (an expired one is replaced); the same path
    /// refreshes the expiry.
    pub fn touch(
        &self,
        t: &Touch<'_>,
        claim: Option<RuntimePath>,
        now: DateTime<Utc>,
    ) -> Result<(), RuntimePath> {
        let mut inner = self.lock();
        let k = map_key(t.scope, t.key);
        if let (Some(path), Some(s)) = (claim, inner.by_key.get(&k)) {
            if let Some(c) = s.live_claim(now) {
                if c.path != path {
                    return Err(c.path);
                }
            }
        }
        if !inner.by_key.contains_key(&k) {
            if inner.by_key.len() >= MAX_SESSIONS {
                Self::evict(&mut inner, now);
            }
            inner.seq += 1;
            let seq = inner.seq;
            inner.by_key.insert(
                k.clone(),
                Session {
                    key: t.key.to_string(),
                    seq,
                    scope: t.scope.clone(),
                    harness: t.harness.to_string(),
                    agent_id: t.agent_id.unwrap_or("default").to_string(),
                    project: t.project.map(str::to_string),
                    claim: None,
                    bypassed: false,
                    served: false,
                    started_at: now,
                    last_seen: now,
                    window: VecDeque::new(),
                    continuity: Continuity::default(),
                },
            );
        }
        // Out of the project index while its project and time change.
        if let Some(slot) = inner.slot(&k) {
            inner.unindex(slot);
        }
        if let Some(s) = inner.by_key.get_mut(&k) {
            s.last_seen = now;
            if s.harness != t.harness {
                s.harness = t.harness.to_string();
            }
            if let Some(a) = t.agent_id.filter(|a| *a != s.agent_id) {
                s.agent_id = a.to_string();
            }
            if let Some(p) = t.project.filter(|p| s.project.as_deref() != Some(*p)) {
                s.project = Some(p.to_string());
            }
            if let Some(path) = claim {
                let claimed_at = match s.live_claim(now) {
                    Some(c) => c.claimed_at,
                    None => now,
                };
                s.claim = Some(Claim {
                    path,
                    claimed_at,
                    expires_at: now + SESSION_TTL,
                });
            }
        }
        if let Some(slot) = inner.slot(&k) {
            inner.index(slot, &k);
        }
        Ok(())
    }

    /// Drop sessions unseen for [`SESSION_TTL`] whose claim expired; if
    /// still full, the least recently seen tenth.
    fn evict(inner: &mut Inner, now: DateTime<Utc>) {
        let stale: Vec<String> = inner
            .by_key
            .iter()
            .filter(|(_, s)| s.last_seen + SESSION_TTL <= now && s.live_claim(now).is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            inner.remove(&k);
        }
        if inner.by_key.len() >= MAX_SESSIONS {
            let mut seen: Vec<(DateTime<Utc>, String)> = inner
                .by_key
                .iter()
                .map(|(k, s)| (s.last_seen, k.clone()))
                .collect();
            seen.sort();
            for (_, k) in seen.into_iter().take(MAX_SESSIONS / 10) {
                inner.remove(&k);
            }
        }
    }

    /// Whether the session is bypassed.
    pub fn is_bypassed(&self, scope: &Scope, key: &str) -> bool {
        self.lock()
            .by_key
            .get(&map_key(scope, key))
            .is_some_and(|s| s.bypassed)
    }

    /// Whether the session was already served a full inject.
    pub fn served(&self, scope: &Scope, key: &str) -> bool {
        self.lock()
            .by_key
            .get(&map_key(scope, key))
            .is_some_and(|s| s.served)
    }

    /// Mark the session as served a full inject; true if it already was.
    pub fn mark_served(&self, scope: &Scope, key: &str) -> bool {
        let mut inner = self.lock();
        match inner.by_key.get_mut(&map_key(scope, key)) {
            Some(s) => std::mem::replace(&mut s.served, true),
            None => false,
        }
    }

    /// The ids injected into the session's last prompts.
    pub fn recent_ids(&self, scope: &Scope, key: &str) -> Vec<String> {
        self.lock()
            .by_key
            .get(&map_key(scope, key))
            .map(|s| s.window.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// Remember what a prompt injected, keeping the last `turns` prompts.
    pub fn push_window(&self, scope: &Scope, key: &str, ids: Vec<String>, turns: usize) {
        let mut inner = self.lock();
        if let Some(s) = inner.by_key.get_mut(&map_key(scope, key)) {
            s.window.push_back(ids);
            while s.window.len() > turns {
                s.window.pop_front();
            }
        }
    }

    /// Forget the repeat window (compaction-complete).
    pub fn reset_window(&self, scope: &Scope, key: &str) {
        if let Some(s) = self.lock().by_key.get_mut(&map_key(scope, key)) {
            s.window.clear();
        }
    }

    /// Count a prompt; a periodic checkpoint is due after
    /// `cadence.prompt_interval` prompts or `cadence.minutes` since the last
    /// one (or the session's start).
    pub fn record_prompt(
        &self,
        scope: &Scope,
        key: &str,
        terms: &[String],
        snippet: String,
        cadence: &ContinuitySettings,
        now: DateTime<Utc>,
    ) -> Option<Due> {
        let (interval, minutes) = (cadence.prompt_interval, cadence.minutes);
        let mut inner = self.lock();
        let s = inner.by_key.get_mut(&map_key(scope, key))?;
        let c = &mut s.continuity;
        c.prompts += 1;
        c.since_checkpoint += 1;
        for t in terms {
            if !c.queries.contains(t) {
                push_capped(&mut c.queries, t.clone(), KEEP_QUERIES);
            }
        }
        push_capped(&mut c.snippets, snippet, KEEP_SNIPPETS);
        let since = c.last_checkpoint.unwrap_or(s.started_at);
        let due = c.since_checkpoint >= interval.max(1)
            || now - since >= Duration::minutes(i64::from(minutes));
        if !due {
            return None;
        }
        let out = Due {
            harness: s.harness.clone(),
            project: s.project.clone(),
            started_at: s.started_at,
            continuity: s.continuity.clone(),
        };
        s.continuity.since_checkpoint = 0;
        s.continuity.last_checkpoint = Some(now);
        s.continuity.queries.clear();
        Some(out)
    }

    /// Note a query (recall hook) for the next checkpoint.
    pub fn record_query(&self, scope: &Scope, key: &str, query: &str) {
        if let Some(s) = self.lock().by_key.get_mut(&map_key(scope, key)) {
            let q = super::text::first_chars(query, 120).to_string();
            push_capped(&mut s.continuity.queries, q, KEEP_QUERIES);
        }
    }

    /// Note a remembered text for the next checkpoint.
    pub fn record_remember(&self, scope: &Scope, key: &str, content: &str) {
        if let Some(s) = self.lock().by_key.get_mut(&map_key(scope, key)) {
            let c = super::text::first_chars(content, 120).to_string();
            push_capped(&mut s.continuity.remembers, c, KEEP_REMEMBERS);
        }
    }

    /// What a pre-compaction or session-end checkpoint is written from, if
    /// the session is known.
    pub fn snapshot(&self, scope: &Scope, key: &str) -> Option<Due> {
        let inner = self.lock();
        let s = inner.by_key.get(&map_key(scope, key))?;
        Some(Due {
            harness: s.harness.clone(),
            project: s.project.clone(),
            started_at: s.started_at,
            continuity: s.continuity.clone(),
        })
    }

    /// End a session: its claim, bypass, presence, dedup mark and window
    /// go; what it knew is returned for the session-end checkpoint.
    pub fn end(&self, scope: &Scope, key: &str) -> Option<Due> {
        let s = self.lock().remove(&map_key(scope, key))?;
        Some(Due {
            harness: s.harness,
            project: s.project,
            started_at: s.started_at,
            continuity: s.continuity,
        })
    }

    /// Other live sessions of `project` (another agent or another key),
    /// most recently seen first, at most [`MAX_PEERS`].
    pub fn peers(
        &self,
        scope: &Scope,
        project: &str,
        key: Option<&str>,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Vec<Peer> {
        let inner = self.lock();
        let Some(tree) = inner.by_project.get(project) else {
            return Vec::new();
        };
        let mut found: Vec<&Session> = Vec::with_capacity(MAX_PEERS);
        for ((seen, _), k) in tree.iter().rev() {
            if *seen + SESSION_TTL <= now || found.len() == MAX_PEERS {
                break;
            }
            let Some(s) = inner.by_key.get(k) else {
                continue;
            };
            if (Some(s.key.as_str()) != key || s.agent_id != agent_id)
                && (scope.is_unscoped() || &s.scope == scope)
            {
                found.push(s);
            }
        }
        let newest_first = |a: &&Session, b: &&Session| b.last_seen.cmp(&a.last_seen);
        found.sort_by(newest_first);
        found
            .into_iter()
            .map(|s| Peer {
                agent_id: s.agent_id.clone(),
                harness: s.harness.clone(),
                project: s.project.clone(),
                key: s.key.clone(),
                last_seen: s.last_seen,
            })
            .collect()
    }

    /// Live sessions the viewer may see, in the order they began.
    pub fn list(&self, viewer: &Scope, now: DateTime<Utc>) -> Vec<SessionInfo> {
        let inner = self.lock();
        let mut rows: Vec<(u64, SessionInfo)> = inner
            .by_key
            .values()
            .filter(|s| viewer.is_unscoped() || &s.scope == viewer)
            .filter(|s| s.last_seen + SESSION_TTL > now || s.live_claim(now).is_some())
            .map(|s| (s.seq, s.info(now)))
            .collect();
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().map(|(_, i)| i).collect()
    }

    /// One session the viewer may see (its own scope's first).
    pub fn get(&self, viewer: &Scope, key: &str, now: DateTime<Utc>) -> Option<SessionInfo> {
        let inner = self.lock();
        Self::find(&inner, viewer, key).map(|k| inner.by_key[&k].info(now))
    }

    fn find(inner: &Inner, viewer: &Scope, key: &str) -> Option<String> {
        let own = map_key(viewer, key);
        if inner.by_key.contains_key(&own) {
            return Some(own);
        }
        if !viewer.is_unscoped() {
            return None;
        }
        inner
            .by_key
            .iter()
            .filter(|(_, s)| s.key == key)
            .min_by_key(|(_, s)| s.seq)
            .map(|(k, _)| k.clone())
    }

    /// Turn bypass on or off for a session the viewer may see.
    pub fn set_bypass(
        &self,
        viewer: &Scope,
        key: &str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Option<SessionInfo> {
        let mut inner = self.lock();
        let k = Self::find(&inner, viewer, key)?;
        let s = inner.by_key.get_mut(&k)?;
        s.bypassed = enabled;
        Some(s.info(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch<'a>(scope: &'a Scope, key: &'a str) -> Touch<'a> {
        Touch {
            scope,
            key,
            harness: "opencode",
            agent_id: None,
            project: Some("/repo"),
        }
    }

    #[test]
    fn claims_conflict_expire_and_refresh() {
        let s = Sessions::default();
        let un = Scope::default();
        let t0 = Utc::now();
        s.touch(&touch(&un, "k"), Some(RuntimePath::Plugin), t0)
            .expect("claim");
        assert_eq!(
            s.touch(&touch(&un, "k"), Some(RuntimePath::Legacy), t0),
            Err(RuntimePath::Plugin)
        );
        assert_eq!(
            s.check_claim(&un, "k", Some(RuntimePath::Legacy), t0),
            Err(RuntimePath::Plugin)
        );
        assert!(s.check_claim(&un, "k", None, t0).is_ok());
        assert!(s
            .check_claim(&un, "k", Some(RuntimePath::Plugin), t0)
            .is_ok());
        // After 4 h the other path may take it.
        let later = t0 + SESSION_TTL + Duration::seconds(1);
        s.touch(&touch(&un, "k"), Some(RuntimePath::Legacy), later)
            .expect("expired claim is replaced");
        let info = s.get(&un, "k", later).expect("session");
        assert_eq!(info.runtime_path, Some(RuntimePath::Legacy));
    }

    #[test]
    fn scopes_do_not_share_sessions() {
        let s = Sessions::default();
        let a = Scope {
            project: Some("a".into()),
            ..Scope::default()
        };
        let b = Scope {
            project: Some("b".into()),
            ..Scope::default()
        };
        let now = Utc::now();
        s.touch(&touch(&a, "k"), Some(RuntimePath::Plugin), now)
            .expect("claim");
        // Same key, other scope: its own session, no conflict.
        s.touch(&touch(&b, "k"), Some(RuntimePath::Legacy), now)
            .expect("separate");
        assert!(s.set_bypass(&b, "k", true, now).is_some());
        assert!(!s.is_bypassed(&a, "k"));
        assert_eq!(s.list(&a, now).len(), 1);
        assert_eq!(s.list(&Scope::default(), now).len(), 2);
        assert!(s.get(&a, "zzz", now).is_none());
    }

    #[test]
    fn window_keeps_the_last_turns_and_end_forgets_everything() {
        let s = Sessions::default();
        let un = Scope::default();
        let now = Utc::now();
        s.touch(&touch(&un, "k"), None, now).expect("touch");
        for i in 0..7 {
            s.push_window(&un, "k", vec![format!("m{i}")], 5);
        }
        assert_eq!(s.recent_ids(&un, "k"), vec!["m2", "m3", "m4", "m5", "m6"]);
        assert!(!s.served(&un, "k"));
        assert!(!s.mark_served(&un, "k"));
        assert!(s.mark_served(&un, "k"));
        assert!(s.served(&un, "k"));
        s.set_bypass(&un, "k", true, now).expect("known");
        assert!(s.end(&un, "k").is_some());
        assert!(!s.is_bypassed(&un, "k"));
        assert!(s.recent_ids(&un, "k").is_empty());
        assert!(s.get(&un, "k", now).is_none());
    }

    #[test]
    fn checkpoints_fall_due_by_count_or_time() {
        let s = Sessions::default();
        let un = Scope::default();
        let t0 = Utc::now();
        let every = ContinuitySettings::default();
        s.touch(&touch(&un, "k"), None, t0).expect("touch");
        for i in 0..9 {
            assert!(s
                .record_prompt(&un, "k", &[format!("t{i}")], "p".into(), &every, t0)
                .is_none());
        }
        let due = s
            .record_prompt(&un, "k", &[], "p".into(), &every, t0)
            .expect("tenth prompt");
        assert_eq!(due.continuity.prompts, 10);
        assert_eq!(due.continuity.queries.len(), 9);
        assert!(s
            .record_prompt(&un, "k", &[], "p".into(), &every, t0 + Duration::minutes(5))
            .is_none());
        assert!(s
            .record_prompt(
                &un,
                "k",
                &[],
                "p".into(),
                &every,
                t0 + Duration::minutes(16)
            )
            .is_some());
    }

    #[test]
    fn peers_are_other_sessions_of_the_project() {
        let s = Sessions::default();
        let un = Scope::default();
        let now = Utc::now();
        for k in ["a", "b", "c"] {
            s.touch(&touch(&un, k), None, now).expect("touch");
        }
        let peers = s.peers(&un, "/repo", Some("a"), "default", now);
        assert_eq!(peers.len(), 2);
        assert!(peers.iter().all(|p| p.key != "a"));
        assert!(s.peers(&un, "/other", Some("a"), "default", now).is_empty());
        // At most six, the most recently seen; a session that moved
        // project is a peer of its new one only.
        for i in 0..10 {
            let k = format!("m{i}");
            s.touch(&touch(&un, &k), None, now + Duration::seconds(i))
                .expect("touch");
        }
        let peers = s.peers(
            &un,
            "/repo",
            Some("a"),
            "default",
            now + Duration::seconds(20),
        );
        let keys: Vec<&str> = peers.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["m9", "m8", "m7", "m6", "m5", "m4"]);
        let t = Touch {
            project: Some("/elsewhere"),
            ..touch(&un, "m9")
        };
        s.touch(&t, None, now).expect("move");
        assert_eq!(s.peers(&un, "/elsewhere", None, "x", now).len(), 1);
        assert!(s
            .peers(&un, "/repo", Some("a"), "default", now)
            .iter()
            .all(|p| p.key != "m9"));
        s.end(&un, "m9");
        assert!(s.peers(&un, "/elsewhere", None, "x", now).is_empty());
    }
}
