//! `signet connect|disconnect claude-code` and `signet hook` as a harness
//! runs them: the real binary, `HOME` in a temp directory, no daemon.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// The variables that would point the binary at a real daemon or turn
/// hooks off; every run starts without them.
const SIGNET_VARS: [&str; 7] = [
    "SIGNET_DAEMON_URL",
    "SIGNET_HOST",
    "SIGNET_PORT",
    "SIGNET_TOKEN",
    "SIGNET_API_KEY",
    "SIGNET_NO_HOOKS",
    "SIGNET_BYPASS",
];

/// Run `signet ARGS` with `HOME=home`, `stdin` on its stdin and `env` set.
fn signet(home: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.args(args)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in SIGNET_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run signet");
    if let Some(mut input) = child.stdin.take() {
        // A command may exit without reading (a usage error).
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("wait for signet")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn settings_path(home: &Path) -> PathBuf {
    home.join(".claude").join("settings.json")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// The binary the hooks should run, as connect resolves it.
fn our_binary() -> String {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_signet"))
        .expect("binary")
        .display()
        .to_string()
}

/// A settings file another tool already hooks into, hand-formatted.
const OTHER_TOOL: &str = r#"{
  "permissions": { "allow": ["Bash(ls)"] },
  "hooks": {
    "SessionStart": [
      { "hooks": [ { "type": "command", "command": "other-tool start" } ] }
    ]
  }
}
"#;

/// A home whose `~/.claude/settings.json` holds `content`.
fn home_with_settings(content: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(home.path().join(".claude")).expect("mkdir");
    std::fs::write(settings_path(home.path()), content).expect("write");
    home
}

/// The backups beside `file`.
fn backups_of(file: &Path) -> Vec<PathBuf> {
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(file.parent().expect("dir"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with(&format!("{name}.signet-backup-"))
            })
        })
        .collect();
    found.sort();
    found
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
fn connect_merges_into_existing_settings_and_backs_them_up() {
    let home = home_with_settings(OTHER_TOOL);
    let settings = settings_path(home.path());
    let out = signet(home.path(), &["connect", "claude-code"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let s = read_json(&settings);
    let bin = our_binary();
    assert_eq!(
        commands(&s, "SessionStart"),
        vec![
            "other-tool start".to_string(),
            format!(r#"{bin} hook session-start -H claude-code --project "$(pwd)""#)
        ]
    );
    assert_eq!(
        commands(&s, "UserPromptSubmit"),
        vec![format!(
            r#"{bin} hook user-prompt-submit -H claude-code --project "$(pwd)""#
        )]
    );
    assert_eq!(
        commands(&s, "PreCompact"),
        vec![format!(
            r#"{bin} hook pre-compaction -H claude-code --project "$(pwd)""#
        )]
    );
    assert_eq!(
        commands(&s, "SessionEnd"),
        vec![format!("{bin} hook session-end -H claude-code")]
    );
    assert_eq!(s["hooks"]["SessionEnd"][0]["hooks"][0]["timeout"], 60);
    assert_eq!(s["permissions"], json!({"allow": ["Bash(ls)"]}));

    // The original is kept under a timestamped name.
    let backups = backups_of(&settings);
    assert_eq!(backups.len(), 1, "{backups:?}");
    let stamp = backups[0]
        .to_string_lossy()
        .rsplit("signet-backup-")
        .next()
        .expect("stamp")
        .to_string();
    assert!(
        stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
        "{stamp}"
    );
    assert_eq!(
        std::fs::read_to_string(&backups[0]).expect("backup"),
        OTHER_TOOL
    );

    // The MCP server, in a file that did not exist (so no backup of it).
    let state = home.path().join(".claude.json");
    assert_eq!(
        read_json(&state)["mcpServers"]["signet"],
        json!({"type": "stdio", "command": bin, "args": ["mcp"]})
    );
    assert!(backups_of(&state).is_empty());
}

#[test]
fn connecting_twice_gives_the_same_files_and_no_new_backup() {
    let home = home_with_settings(OTHER_TOOL);
    let settings = settings_path(home.path());
    let state = home.path().join(".claude.json");
    assert!(signet(home.path(), &["connect", "claude-code"], "", &[])
        .status
        .success());
    let first = (
        std::fs::read_to_string(&settings).expect("settings"),
        std::fs::read_to_string(&state).expect("state"),
    );
    let out = signet(home.path(), &["connect", "claude-code"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    let second = (
        std::fs::read_to_string(&settings).expect("settings"),
        std::fs::read_to_string(&state).expect("state"),
    );
    assert_eq!(first, second);
    assert_eq!(backups_of(&settings).len(), 1);
    assert!(backups_of(&state).is_empty());
}

#[test]
fn a_dry_run_prints_the_files_and_writes_nothing() {
    let home = home_with_settings(OTHER_TOOL);
    let out = signet(
        home.path(),
        &["connect", "claude-code", "--dry-run"],
        "",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "would write {}",
            settings_path(home.path()).display()
        )),
        "{text}"
    );
    assert!(text.contains("other-tool start"), "{text}");
    assert!(text.contains("hook session-end -H claude-code"), "{text}");
    assert!(text.contains("\"mcpServers\""), "{text}");
    assert_eq!(
        std::fs::read_to_string(settings_path(home.path())).expect("settings"),
        OTHER_TOOL
    );
    assert!(backups_of(&settings_path(home.path())).is_empty());
    assert!(!home.path().join(".claude.json").exists());
    // Disconnect's dry run after a real connect changes nothing either.
    assert!(signet(home.path(), &["connect", "claude-code"], "", &[])
        .status
        .success());
    let connected = std::fs::read_to_string(settings_path(home.path())).expect("settings");
    let out = signet(
        home.path(),
        &["disconnect", "claude-code", "--dry-run"],
        "",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(settings_path(home.path())).expect("settings"),
        connected
    );
    assert_eq!(backups_of(&settings_path(home.path())).len(), 1);
}

#[test]
fn disconnect_removes_ours_and_keeps_the_other_tools_hook() {
    let home = home_with_settings(OTHER_TOOL);
    let settings = settings_path(home.path());
    let state = home.path().join(".claude.json");
    std::fs::write(
        &state,
        r#"{"numStartups": 4, "mcpServers": {"other": {"command": "x"}}}"#,
    )
    .expect("state");
    assert!(signet(home.path(), &["connect", "claude-code"], "", &[])
        .status
        .success());
    let out = signet(home.path(), &["disconnect", "claude-code"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));

    let s = read_json(&settings);
    assert_eq!(commands(&s, "SessionStart"), vec!["other-tool start"]);
    for event in ["UserPromptSubmit", "PreCompact", "SessionEnd"] {
        assert!(s["hooks"].get(event).is_none(), "{event}: {s}");
    }
    assert_eq!(
        s,
        serde_json::from_str::<Value>(OTHER_TOOL).expect("original")
    );
    assert_eq!(
        read_json(&state),
        json!({"numStartups": 4, "mcpServers": {"other": {"command": "x"}}})
    );
    // Each change was backed up first.
    assert_eq!(backups_of(&settings).len(), 2);
    assert_eq!(backups_of(&state).len(), 2);
}

#[test]
fn a_settings_file_that_is_not_json_is_refused_and_left_alone() {
    for bad in ["{ \"hooks\": ", "[1, 2]", "// comment\n{}"] {
        let home = home_with_settings(bad);
        for args in [
            &["connect", "claude-code"][..],
            &["disconnect", "claude-code"],
        ] {
            let out = signet(home.path(), args, "", &[]);
            assert!(!out.status.success(), "{args:?} on {bad:?}");
            assert!(stderr(&out).contains("settings.json"), "{}", stderr(&out));
            assert_eq!(
                std::fs::read_to_string(settings_path(home.path())).expect("settings"),
                bad
            );
            assert!(backups_of(&settings_path(home.path())).is_empty());
            assert!(!home.path().join(".claude.json").exists());
        }
    }
}

#[test]
fn a_hook_with_no_daemon_listening_exits_0_with_one_stderr_line() {
    let home = tempfile::tempdir().expect("tmp");
    let event = json!({"session_id": "s1", "cwd": "/tmp", "prompt": "hello",
                       "hook_event_name": "UserPromptSubmit"})
    .to_string();
    for stdin in [event.as_str(), "", "not json"] {
        let out = signet(
            home.path(),
            &["hook", "user-prompt-submit", "-H", "claude-code"],
            stdin,
            &[("SIGNET_DAEMON_URL", "http://127.0.0.1:1")],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
        assert_eq!(stderr(&out), "[signet] daemon not running, hook skipped\n");
    }
}

#[test]
fn hooks_turned_off_exit_0_silently() {
    let home = tempfile::tempdir().expect("tmp");
    for var in ["SIGNET_NO_HOOKS", "SIGNET_BYPASS"] {
        let out = signet(
            home.path(),
            &[
                "hook",
                "session-start",
                "-H",
                "claude-code",
                "--project",
                "/p",
            ],
            r#"{"session_id": "s1"}"#,
            &[(var, "1"), ("SIGNET_DAEMON_URL", "http://127.0.0.1:1")],
        );
        assert_eq!(out.status.code(), Some(0));
        assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    }
}

#[test]
fn every_hook_accepts_every_option_and_a_bad_name_does_not_exit_2() {
    let home = tempfile::tempdir().expect("tmp");
    for name in [
        "session-start",
        "user-prompt-submit",
        "session-end",
        "pre-compaction",
        "compaction-complete",
        "remember",
        "recall",
    ] {
        let out = signet(
            home.path(),
            &[
                "hook",
                name,
                "--harness",
                "codex",
                "--project",
                "/p",
                "--agent-id",
                "a",
                "--session-key",
                "k",
                "--runtime-path",
                "plugin",
            ],
            "{}",
            &[("SIGNET_NO_HOOKS", "1")],
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    }
    // Claude Code reads exit status 2 as "block the prompt": a usage
    // error in a hook exits 1 instead.
    let out = signet(home.path(), &["hook", "no-such-hook"], "{}", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-hook"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}
