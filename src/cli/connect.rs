//! `signet connect claude-code` and `signet disconnect claude-code`: wire
//! Claude Code to this daemon, and unwire it, by editing its two files.
//!
//! - `~/.claude/settings.json` gets four hooks that run this binary:
//!   SessionStart, UserPromptSubmit and PreCompact (`signet hook <name> -H
//!   claude-code --project "$(pwd)"`, 5 s) and SessionEnd (60 s).
//! - `~/.claude.json` gets `mcpServers.signet`, a stdio server running
//!   `signet mcp`.
//!
//! The files belong to the user and to Claude Code, so nothing else in
//! them changes. A hook entry is ours when its command runs a program named
//! `signet` (or this very binary) as `hook <name>` with `-H claude-code`:
//! no marker is added, because Claude Code validates its settings and the
//! command itself is what identifies the entry (Signet's own hooks have
//! the same shape, so connecting replaces them rather than doubling them).
//! Connect first removes our entries, then appends fresh ones, so running
//! it twice gives the same file; disconnect removes them, and the groups,
//! events and `hooks` object that removing them left empty.
//!
//! A file is read and parsed before anything is written; one that is not a
//! JSON object stops the command with nothing changed. A file that changes
//! is first copied to `<file>.signet-backup-<UTC YYYYMMDDTHHMMSSZ>`, then
//! replaced atomically (a temporary file in the same directory, renamed,
//! with the old file's permissions). A file whose content would not change
//! is not touched. The JSON is written 2-space indented with each
//! object's keys in the file's own order, new keys last
//! ([`json_layout`]).
//!
//! Tokens are never written into a dotfile: Claude Code hands its own
//! environment to hooks and MCP servers, so `SIGNET_TOKEN` belongs where
//! Claude Code is started. A daemon address other than the default
//! (`SIGNET_DAEMON_URL`, or `SIGNET_HOST`/`SIGNET_PORT`) at connect time is
//! pinned as `SIGNET_DAEMON_URL` in both the hook commands and the MCP
//! server's `env`, so both reach the same daemon.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::cli::hook::Hook;
use crate::cli::json_layout::{self, Layout};

/// The harnesses `connect` knows how to wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Harness {
    /// Anthropic's Claude Code (`~/.claude/settings.json`, `~/.claude.json`).
    ClaudeCode,
}

/// What connect and disconnect need from the outside world.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The home directory the harness's files live under.
    pub home: PathBuf,
    /// The absolute path of the `signet` binary the hooks will run.
    pub exe: PathBuf,
    /// A daemon address to pin, when not the default.
    pub daemon_url: Option<String>,
    /// Whether a token is set in this environment (for a hint only).
    pub token_in_env: bool,
}

/// The hooks connect installs: Claude Code event, `signet hook` name,
/// whether it passes the working directory as project, timeout (s).
const HOOKS: [(&str, &str, bool, u64); 4] = [
    ("SessionStart", "session-start", true, 5),
    ("UserPromptSubmit", "user-prompt-submit", true, 5),
    ("PreCompact", "pre-compaction", true, 5),
    ("SessionEnd", "session-end", false, 60),
];

/// The harness name the hooks pass with `-H`.
const HARNESS: &str = "claude-code";

/// `s` as one shell word: unchanged when it is plain, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Split a command line into words the way `sh` would for the simple
/// commands hooks are (quotes and backslashes; `$(…)` stays literal).
/// `None` for an unterminated quote.
fn shell_words(command: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => w.push(c),
                            c => {
                                w.push('\\');
                                w.push(c);
                            }
                        },
                        c => w.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(c) = chars.next() {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// Whether a hook command is one of ours: (after `VAR=value` prefixes) a
/// program named `signet`, or `exe` itself, running `hook <name>` with
/// `-H claude-code` (or `--harness`).
pub fn is_our_hook_command(command: &str, exe: &Path) -> bool {
    let Some(words) = shell_words(command) else {
        return false;
    };
    let mut words = words.iter().skip_while(|w| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    });
    let Some(program) = words.next() else {
        return false;
    };
    let program = Path::new(program);
    if program.file_name().and_then(|n| n.to_str()) != Some("signet") && program != exe {
        return false;
    }
    let rest: Vec<&str> = words.map(String::as_str).collect();
    let harness = rest
        .windows(2)
        .any(|w| matches!(w, ["-H" | "--harness", h] if *h == HARNESS))
        || rest.contains(&"--harness=claude-code");
    let named = match rest.as_slice() {
        ["hook", name, ..] => Hook::ALL.iter().any(|h| h.name() == *name),
        _ => false,
    };
    named && harness
}

/// The hook command for one `signet hook` name.
pub fn hook_command(
    exe: &Path,
    name: &str,
    with_project: bool,
    daemon_url: Option<&str>,
) -> String {
    let mut command = String::new();
    if let Some(url) = daemon_url {
        command.push_str(&format!("SIGNET_DAEMON_URL={} ", shell_quote(url)));
    }
    command.push_str(&format!(
        "{} hook {name} -H {HARNESS}",
        shell_quote(&exe.to_string_lossy())
    ));
    if with_project {
        command.push_str(r#" --project "$(pwd)""#);
    }
    command
}

/// Remove our hook entries from a settings object: the count removed and
/// the settings without them. Groups, event lists and the `hooks` object
/// are dropped when removing ours emptied them; anything else (including
/// a `hooks` that is not an object) is left as it was.
pub fn remove_hooks(mut settings: Value, exe: &Path) -> Result<(Value, usize), String> {
    let obj = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?;
    let Some(hooks) = obj.get_mut("hooks").and_then(Value::as_object_mut) else {
        return Ok((settings, 0));
    };
    let mut removed = 0;
    let mut emptied_events = Vec::new();
    for (event, groups) in hooks.iter_mut() {
        let Some(groups) = groups.as_array_mut() else {
            continue;
        };
        let mut removed_here = 0;
        groups.retain_mut(|group| {
            let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
                return true;
            };
            let before = list.len();
            list.retain(|h| {
                !h.get("command")
                    .and_then(Value::as_str)
                    .is_some_and(|c| is_our_hook_command(c, exe))
            });
            let gone = before - list.len();
            removed_here += gone;
            gone == 0 || !list.is_empty()
        });
        if removed_here > 0 && groups.is_empty() {
            emptied_events.push(event.clone());
        }
        removed += removed_here;
    }
    for event in emptied_events {
        hooks.remove(&event);
    }
    if removed > 0 && hooks.is_empty() {
        obj.remove("hooks");
    }
    Ok((settings, removed))
}

/// The settings with our hooks in place of any earlier ones of ours,
/// appended after everything else in each event.
pub fn add_hooks(settings: Value, exe: &Path, daemon_url: Option<&str>) -> Result<Value, String> {
    let (mut settings, _) = remove_hooks(settings, exe)?;
    let obj = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?;
    let hooks = obj
        .entry("hooks")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("\"hooks\" is not a JSON object")?;
    for (event, name, with_project, timeout) in HOOKS {
        let groups = hooks
            .entry(event)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| format!("\"hooks.{event}\" is not a JSON array"))?;
        groups.push(json!({"hooks": [{
            "type": "command",
            "command": hook_command(exe, name, with_project, daemon_url),
            "timeout": timeout,
        }]}));
    }
    Ok(settings)
}

/// The `mcpServers.signet` entry: a stdio server running `signet mcp`.
pub fn mcp_server(exe: &Path, daemon_url: Option<&str>) -> Value {
    let mut server = json!({
        "type": "stdio",
        "command": exe.to_string_lossy(),
        "args": ["mcp"],
    });
    if let Some(url) = daemon_url {
        server["env"] = json!({"SIGNET_DAEMON_URL": url});
    }
    server
}

/// The Claude Code state with `mcpServers.signet` set to `server`.
pub fn add_mcp_server(mut state: Value, server: Value) -> Result<Value, String> {
    let servers = state
        .as_object_mut()
        .ok_or("the file is not a JSON object")?
        .entry("mcpServers")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("\"mcpServers\" is not a JSON object")?;
    servers.insert("signet".into(), server);
    Ok(state)
}

/// The Claude Code state without `mcpServers.signet` (and without
/// `mcpServers` if that emptied it); whether there was one.
pub fn remove_mcp_server(mut state: Value) -> Result<(Value, bool), String> {
    let obj = state
        .as_object_mut()
        .ok_or("the file is not a JSON object")?;
    let Some(servers) = obj.get_mut("mcpServers").and_then(Value::as_object_mut) else {
        return Ok((state, false));
    };
    let removed = servers.remove("signet").is_some();
    if removed && servers.is_empty() {
        obj.remove("mcpServers");
    }
    Ok((state, removed))
}

/// A JSON file as found, with its key order: `None` when missing, `{}`
/// when blank, an error when it is not a JSON object (the caller then
/// writes nothing).
pub fn read_json_object(path: &Path) -> Result<Option<(Value, Layout)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(Some((Value::Object(Map::new()), Layout::default())));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(Some((v, Layout::of(&text)))),
        Ok(_) => Err(format!(
            "{} is not a JSON object; nothing was changed",
            path.display()
        )),
        Err(e) => Err(format!(
            "{} is not valid JSON ({e}); nothing was changed",
            path.display()
        )),
    }
}

/// A free backup name beside `path` for this moment (`-2`, `-3`, … when
/// one was already taken this second).
pub fn backup_path(path: &Path, now: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let stem = format!(
        "{}.signet-backup-{}",
        path.display(),
        now.format("%Y%m%dT%H%M%SZ")
    );
    let mut candidate = PathBuf::from(&stem);
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{stem}-{n}"));
        n += 1;
    }
    candidate
}

/// Replace `path` with `text` atomically: a temporary file in the same
/// directory (with the old file's permissions), synced, then renamed.
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.signet-tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// One file's planned change.
struct Edit {
    /// The path as shown to the user.
    path: PathBuf,
    /// The content now (`None`: no file).
    before: Option<Value>,
    /// The key order of the file now.
    layout: Layout,
    after: Value,
    /// What changing it does, for the summary line.
    what: String,
}

/// The file a path names, following a symbolic link (dotfile managers
/// link these), so the rename replaces the real file and not the link.
fn real_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Carry out (or with `dry_run` describe) the edits; the lines to print.
fn apply(edits: Vec<Edit>, dry_run: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for edit in edits {
        let shown = edit.path.display();
        if edit.before.as_ref() == Some(&edit.after) {
            out.push(format!("{shown}: unchanged"));
            continue;
        }
        let text = json_layout::pretty(&edit.after, &edit.layout);
        if dry_run {
            out.push(format!("would write {shown} ({}):", edit.what));
            out.push(text.trim_end().to_string());
            continue;
        }
        let real = real_path(&edit.path);
        let backup = match edit.before {
            Some(_) if real.exists() => {
                let backup = backup_path(&real, chrono::Utc::now());
                std::fs::copy(&real, &backup)
                    .map_err(|e| format!("cannot back up {shown}: {e}"))?;
                format!("; backup {}", backup.display())
            }
            _ => String::new(),
        };
        write_atomic(&real, &text)?;
        out.push(format!("{shown}: {}{backup}", edit.what));
    }
    Ok(out)
}

fn settings_path(home: &Path) -> PathBuf {
    home.join(".claude").join("settings.json")
}

fn state_path(home: &Path) -> PathBuf {
    home.join(".claude.json")
}

/// A file's content and key order, apart (no file: no content, no order).
fn split(found: Option<(Value, Layout)>) -> (Option<Value>, Layout) {
    match found {
        Some((value, layout)) => (Some(value), layout),
        None => (None, Layout::default()),
    }
}

/// Prefix an error with the file it is about.
fn about(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// `signet connect <harness>`: install the hooks and the MCP server.
pub fn connect(harness: Harness, setup: &Setup, dry_run: bool) -> Result<Vec<String>, String> {
    let Harness::ClaudeCode = harness;
    let url = setup.daemon_url.as_deref();
    let settings = settings_path(&setup.home);
    let state = state_path(&setup.home);
    // Read and merge both before writing either.
    let (before, layout) = split(read_json_object(&settings)?);
    let after = add_hooks(before.clone().unwrap_or_else(|| json!({})), &setup.exe, url)
        .map_err(about(&settings))?;
    let (state_before, state_layout) = split(read_json_object(&state)?);
    let state_after = add_mcp_server(
        state_before.clone().unwrap_or_else(|| json!({})),
        mcp_server(&setup.exe, url),
    )
    .map_err(about(&state))?;
    let pinned = url
        .map(|u| format!(" with SIGNET_DAEMON_URL={u}"))
        .unwrap_or_default();
    let mut out = apply(
        vec![
            Edit {
                path: settings,
                before,
                layout,
                after,
                what: format!(
                    "hooks SessionStart, UserPromptSubmit, PreCompact, SessionEnd run {}{pinned}",
                    setup.exe.display()
                ),
            },
            Edit {
                path: state,
                before: state_before,
                layout: state_layout,
                after: state_after,
                what: format!("mcpServers.signet runs {} mcp{pinned}", setup.exe.display()),
            },
        ],
        dry_run,
    )?;
    if setup.token_in_env {
        out.push(
            "note: the token (SIGNET_TOKEN/SIGNET_API_KEY) is not written to any file; \
             the hooks and `signet mcp` read it from the environment Claude Code starts in"
                .into(),
        );
    }
    Ok(out)
}

/// `signet disconnect <harness>`: remove our hooks and MCP server.
pub fn disconnect(harness: Harness, setup: &Setup, dry_run: bool) -> Result<Vec<String>, String> {
    let Harness::ClaudeCode = harness;
    let settings = settings_path(&setup.home);
    let state = state_path(&setup.home);
    let before = read_json_object(&settings)?;
    let state_before = read_json_object(&state)?;
    let mut edits = Vec::new();
    let mut out = Vec::new();
    match before {
        None => out.push(format!(
            "{}: not found, nothing to remove",
            settings.display()
        )),
        Some((before, layout)) => {
            let (after, removed) =
                remove_hooks(before.clone(), &setup.exe).map_err(about(&settings))?;
            edits.push(Edit {
                path: settings,
                before: Some(before),
                layout,
                after,
                what: format!("removed {removed} signet hook(s)"),
            });
        }
    }
    match state_before {
        None => out.push(format!("{}: not found, nothing to remove", state.display())),
        Some((before, layout)) => {
            let (after, _) = remove_mcp_server(before.clone()).map_err(about(&state))?;
            edits.push(Edit {
                path: state,
                before: Some(before),
                layout,
                after,
                what: "removed mcpServers.signet".into(),
            });
        }
    }
    out.extend(apply(edits, dry_run)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe() -> PathBuf {
        PathBuf::from("/opt/signet/bin/signet")
    }

    /// Another tool's hook in the same events we use, plus other settings.
    fn theirs() -> Value {
        json!({
            "model": "opus",
            "permissions": {"allow": ["Bash(ls)"]},
            "hooks": {
                "SessionStart": [
                    {"matcher": "startup", "hooks": [{"type": "command", "command": "other-tool start"}]}
                ],
                "PreToolUse": [
                    {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
                ]
            }
        })
    }

    fn commands(settings: &Value, event: &str) -> Vec<String> {
        settings["hooks"][event]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["hooks"].as_array().into_iter().flatten())
            .filter_map(|h| h["command"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn connect_adds_the_four_hooks_after_the_other_tools_ones() {
        let s = add_hooks(theirs(), &exe(), None).expect("merge");
        assert_eq!(
            commands(&s, "SessionStart"),
            vec![
                "other-tool start".to_string(),
                r#"/opt/signet/bin/signet hook session-start -H claude-code --project "$(pwd)""#
                    .into()
            ]
        );
        assert_eq!(
            commands(&s, "UserPromptSubmit"),
            vec![
                r#"/opt/signet/bin/signet hook user-prompt-submit -H claude-code --project "$(pwd)""#
            ]
        );
        assert_eq!(
            commands(&s, "PreCompact"),
            vec![r#"/opt/signet/bin/signet hook pre-compaction -H claude-code --project "$(pwd)""#]
        );
        assert_eq!(
            commands(&s, "SessionEnd"),
            vec!["/opt/signet/bin/signet hook session-end -H claude-code"]
        );
        assert_eq!(s["hooks"]["SessionEnd"][0]["hooks"][0]["timeout"], 60);
        assert_eq!(s["hooks"]["SessionStart"][1]["hooks"][0]["timeout"], 5);
        assert_eq!(s["hooks"]["SessionStart"][1]["hooks"][0]["type"], "command");
        // Everything else is as it was.
        assert_eq!(s["model"], "opus");
        assert_eq!(s["permissions"], theirs()["permissions"]);
        assert_eq!(s["hooks"]["PreToolUse"], theirs()["hooks"]["PreToolUse"]);
        assert_eq!(
            s["hooks"]["SessionStart"][0],
            theirs()["hooks"]["SessionStart"][0]
        );
    }

    #[test]
    fn connecting_twice_gives_the_same_settings() {
        let once = add_hooks(theirs(), &exe(), None).expect("once");
        let twice = add_hooks(once.clone(), &exe(), None).expect("twice");
        assert_eq!(once, twice);
        // Also from an empty file, and when the binary moved.
        let a = add_hooks(json!({}), &exe(), None).expect("a");
        let moved = add_hooks(a, Path::new("/usr/local/bin/signet"), None).expect("moved");
        assert_eq!(commands(&moved, "SessionEnd").len(), 1);
        assert!(commands(&moved, "SessionEnd")[0].starts_with("/usr/local/bin/signet "));
    }

    #[test]
    fn connect_replaces_signets_own_hooks_but_not_lookalikes() {
        let s = json!({"hooks": {
            "SessionStart": [{"hooks": [
                {"type": "command", "command": "signet hook session-start -H claude-code --project \"$(pwd)\""}
            ]}],
            "PreCompact": [{"hooks": [
                {"type": "command", "command": "signet hook pre-compaction -H opencode"},
                {"type": "command", "command": "notsignet hook pre-compaction -H claude-code"},
                {"type": "command", "command": "echo signet hook x -H claude-code"}
            ]}]
        }});
        let s = add_hooks(s, &exe(), None).expect("merge");
        assert_eq!(commands(&s, "SessionStart").len(), 1);
        assert!(commands(&s, "SessionStart")[0].starts_with("/opt/signet/bin/signet"));
        assert_eq!(commands(&s, "PreCompact").len(), 4);
    }

    #[test]
    fn disconnect_after_connect_restores_the_original() {
        for original in [
            theirs(),
            json!({}),
            json!({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x"}]}]}}),
        ] {
            let connected = add_hooks(original.clone(), &exe(), Some("http://h:1")).expect("add");
            let (back, removed) = remove_hooks(connected, &exe()).expect("remove");
            assert_eq!(removed, 4);
            assert_eq!(back, original);
        }
        // A group holding ours and another tool's keeps the other one.
        let s = json!({"hooks": {"SessionEnd": [{"hooks": [
            {"type": "command", "command": "/opt/signet/bin/signet hook session-end -H claude-code"},
            {"type": "command", "command": "log-end"}
        ]}]}});
        let (s, removed) = remove_hooks(s, &exe()).expect("remove");
        assert_eq!(removed, 1);
        assert_eq!(commands(&s, "SessionEnd"), vec!["log-end"]);
        // Nothing of ours: unchanged, even odd shapes.
        let odd = json!({"hooks": {"SessionStart": "nope", "Stop": [1, {"hooks": 2}]}});
        assert_eq!(remove_hooks(odd.clone(), &exe()).expect("odd"), (odd, 0));
        let odd = json!({"hooks": []});
        assert_eq!(remove_hooks(odd.clone(), &exe()).expect("odd"), (odd, 0));
    }

    #[test]
    fn settings_of_the_wrong_shape_are_refused() {
        assert!(add_hooks(json!([]), &exe(), None).is_err());
        assert!(remove_hooks(json!("x"), &exe()).is_err());
        assert!(add_hooks(json!({"hooks": []}), &exe(), None).is_err());
        assert!(add_hooks(json!({"hooks": {"SessionEnd": {}}}), &exe(), None).is_err());
        assert!(add_mcp_server(json!(1), json!({})).is_err());
        assert!(add_mcp_server(json!({"mcpServers": []}), json!({})).is_err());
        assert!(remove_mcp_server(json!(null)).is_err());
    }

    #[test]
    fn the_mcp_server_is_added_replaced_and_removed_alone() {
        let state = json!({"numStartups": 3, "mcpServers": {
            "other": {"command": "x"},
            "signet": {"type": "stdio", "command": "signet-mcp"}
        }});
        let server = mcp_server(&exe(), None);
        assert_eq!(
            server,
            json!({"type": "stdio", "command": "/opt/signet/bin/signet", "args": ["mcp"]})
        );
        let s = add_mcp_server(state.clone(), server.clone()).expect("add");
        assert_eq!(s["mcpServers"]["signet"], server);
        assert_eq!(s["mcpServers"]["other"], state["mcpServers"]["other"]);
        assert_eq!(s["numStartups"], 3);
        assert_eq!(add_mcp_server(s.clone(), server).expect("again"), s);
        let (s, removed) = remove_mcp_server(s).expect("remove");
        assert!(removed);
        assert_eq!(
            s,
            json!({"numStartups": 3, "mcpServers": {"other": {"command": "x"}}})
        );
        // Adding to a file without servers and removing again restores it.
        let empty = json!({"numStartups": 1});
        let s = add_mcp_server(empty.clone(), mcp_server(&exe(), Some("http://h:1"))).expect("add");
        assert_eq!(
            s["mcpServers"]["signet"]["env"],
            json!({"SIGNET_DAEMON_URL": "http://h:1"})
        );
        assert_eq!(remove_mcp_server(s).expect("remove"), (empty.clone(), true));
        assert_eq!(
            remove_mcp_server(empty.clone()).expect("none"),
            (empty, false)
        );
    }

    #[test]
    fn paths_with_spaces_are_quoted_and_still_recognised() {
        let exe = Path::new("/Users/Jo Smith/bin/signet");
        let c = hook_command(exe, "session-end", false, Some("http://h:1/x y"));
        assert_eq!(
            c,
            r#"SIGNET_DAEMON_URL='http://h:1/x y' '/Users/Jo Smith/bin/signet' hook session-end -H claude-code"#
        );
        assert!(is_our_hook_command(&c, exe));
        let odd = Path::new("/tmp/it's/bin/signet-dev");
        let c = hook_command(odd, "session-start", true, None);
        assert_eq!(
            c,
            r#"'/tmp/it'\''s/bin/signet-dev' hook session-start -H claude-code --project "$(pwd)""#
        );
        // Named otherwise, it is ours only as this very binary.
        assert!(is_our_hook_command(&c, odd));
        assert!(!is_our_hook_command(&c, &PathBuf::from("/usr/bin/signet")));
    }

    #[test]
    fn our_hook_commands_are_recognised_by_their_shape() {
        let me = exe();
        for yes in [
            "signet hook session-start -H claude-code",
            "/x/signet hook recall --harness claude-code",
            "/x/signet hook recall --harness=claude-code",
            "A=1 B='x y' signet hook session-end -H claude-code",
            r#""/x y/signet" hook remember -H "claude-code" --project "$(pwd)""#,
        ] {
            assert!(is_our_hook_command(yes, &me), "{yes}");
        }
        for no in [
            "signet hook session-start -H codex",
            "signet mcp",
            "signet hook -H claude-code",
            "signet-rs hook session-start -H claude-code",
            "sh -c 'signet hook session-start -H claude-code'",
            "signet hook session-start -H 'claude-code",
            "",
        ] {
            assert!(!is_our_hook_command(no, &me), "{no}");
        }
    }

    #[test]
    fn a_backup_never_overwrites_an_earlier_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("settings.json");
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-06T15:04:05Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let first = backup_path(&file, now);
        assert_eq!(
            first,
            dir.path()
                .join("settings.json.signet-backup-20250106T150405Z")
        );
        std::fs::write(&first, "x").expect("write");
        assert_eq!(
            backup_path(&file, now),
            dir.path()
                .join("settings.json.signet-backup-20250106T150405Z-2")
        );
    }

    #[test]
    fn files_are_read_as_objects_or_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f.json");
        let read = |p: &Path| read_json_object(p).map(|found| found.map(|(v, _)| v));
        assert_eq!(read(&p), Ok(None));
        std::fs::write(&p, " \n").expect("write");
        assert_eq!(read(&p), Ok(Some(json!({}))));
        std::fs::write(&p, r#"{"a": 1}"#).expect("write");
        assert_eq!(read(&p), Ok(Some(json!({"a": 1}))));
        for bad in ["[1]", "null", "{oops", "\"s\""] {
            std::fs::write(&p, bad).expect("write");
            assert!(read(&p).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_then_disconnect_gives_back_the_same_bytes() {
        let home = tempfile::tempdir().expect("tmp");
        let settings = home.path().join(".claude/settings.json");
        std::fs::create_dir_all(home.path().join(".claude")).expect("mkdir");
        let original = format!(
            "{}\n",
            serde_json::to_string_pretty(&theirs()).expect("pretty")
        )
        // Not in sorted order: "permissions" before "model".
        .replace("\"model\": \"opus\",\n  \"permissions\": {\n    \"allow\": [\n      \"Bash(ls)\"\n    ]\n  }",
                 "\"permissions\": {\n    \"allow\": [\n      \"Bash(ls)\"\n    ]\n  },\n  \"model\": \"opus\"");
        assert!(
            original.find("permissions") < original.find("model"),
            "{original}"
        );
        std::fs::write(&settings, &original).expect("write");
        let setup = Setup {
            home: home.path().to_path_buf(),
            exe: exe(),
            daemon_url: None,
            token_in_env: true,
        };
        let out = connect(Harness::ClaudeCode, &setup, false).expect("connect");
        assert!(
            out.last().is_some_and(|l| l.starts_with("note: the token")),
            "{out:?}"
        );
        let connected = std::fs::read_to_string(&settings).expect("read");
        assert!(connected.find("permissions") < connected.find("model"));
        let again = connect(Harness::ClaudeCode, &setup, false).expect("again");
        assert!(again[0].ends_with(": unchanged"), "{again:?}");
        disconnect(Harness::ClaudeCode, &setup, false).expect("disconnect");
        assert_eq!(std::fs::read_to_string(&settings).expect("read"), original);
        // The state file did not exist: disconnect leaves an empty object.
        assert_eq!(
            std::fs::read_to_string(home.path().join(".claude.json")).expect("read"),
            "{}\n"
        );
    }

    #[test]
    fn an_atomic_write_keeps_the_permissions_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("state.json");
        std::fs::write(&p, "{}").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        write_atomic(&p, "{\"a\": 1}\n").expect("atomic");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "{\"a\": 1}\n");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
