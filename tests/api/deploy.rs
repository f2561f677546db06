//! Static checks of the deployment files under `deploy/`.
//!
//! There is no Docker engine where these tests run: the image is never built
//! and no container starts. What can be checked without one is checked here:
//! the compose file's shape, the entrypoint (run under `sh` against a temp
//! workspace, its output parsed by the daemon's own config code), the
//! Dockerfile's essentials, the proxy samples' SSE settings, and hadolint /
//! shellcheck when they happen to be installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use signet::config::{parse_settings, AuthMode, Config, FileSettings};
use yaml_serde::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(rel: &str) -> String {
    let p = deploy(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn compose() -> Value {
    yaml_serde::from_str(&read("docker/docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    c.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("compose has no service {name}"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every subnet declared under the compose file's `networks:`.
fn compose_subnets(c: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(nets) = c.get("networks").and_then(Value::as_mapping) {
        for net in nets.values() {
            let configs = net
                .get("ipam")
                .and_then(|i| i.get("config"))
                .and_then(Value::as_sequence);
            for cfg in configs.into_iter().flatten() {
                if let Some(s) = cfg.get("subnet").and_then(Value::as_str) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

/// Run the entrypoint under `sh` with `SIGNET_PATH=workspace` and `args` as
/// the command. `proxies` sets `SIGNET_TRUSTED_PROXIES` (None: unset).
fn entrypoint(workspace: &Path, proxies: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(deploy("docker/entrypoint.sh"))
        .args(args)
        .env("SIGNET_PATH", workspace)
        .env_remove("SIGNET_TRUSTED_PROXIES");
    if let Some(p) = proxies {
        cmd.env("SIGNET_TRUSTED_PROXIES", p);
    }
    cmd.output().expect("run sh")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "entrypoint failed ({}): stdout={} stderr={}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn settings_in(workspace: &Path) -> FileSettings {
    let text = std::fs::read_to_string(workspace.join("agent.yaml")).expect("agent.yaml written");
    let (settings, unknown) = parse_settings(&text).expect("agent.yaml parses");
    assert!(unknown.is_empty(), "unknown keys {unknown:?} in:\n{text}");
    settings
}

/// The trusted proxies the entrypoint writes when nothing is configured.
fn default_trusted_proxies() -> Vec<String> {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    assert_ok(&entrypoint(&ws, None, &["true"]));
    settings_in(&ws).auth.trusted_proxies
}

// ---------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------

#[test]
fn compose_file_has_the_daemon_and_caddy() {
    let c = compose();
    let signet = service(&c, "signet");
    let caddy = service(&c, "caddy");

    let build = signet.get("build").expect("signet is built here");
    assert_eq!(build.get("context").and_then(Value::as_str), Some("../.."));
    let dockerfile = build
        .get("dockerfile")
        .and_then(Value::as_str)
        .expect("build.dockerfile");
    assert!(
        repo().join(dockerfile).is_file(),
        "build.dockerfile {dockerfile} is not a file relative to the repo root"
    );

    let test = strings(signet.get("healthcheck").and_then(|h| h.get("test")));
    assert!(
        test.iter().any(|t| t.contains("/health")),
        "signet healthcheck must hit /health: {test:?}"
    );
    let volumes = strings(signet.get("volumes"));
    assert!(
        volumes.iter().any(|v| v.split(':').nth(1) == Some("/data")),
        "signet needs a volume on /data: {volumes:?}"
    );
    // The daemon is reached through Caddy only.
    assert!(signet.get("ports").is_none(), "signet must publish no port");
    assert!(
        strings(signet.get("env_file")).contains(&".env".to_string()),
        "signet takes its environment from .env"
    );

    assert_eq!(caddy.get("image").and_then(Value::as_str), Some("caddy:2"));
    let ports = strings(caddy.get("ports"));
    for container_port in ["80", "443"] {
        assert!(
            ports
                .iter()
                .any(|p| p.rsplit(':').next() == Some(container_port)),
            "caddy must publish {container_port}: {ports:?}"
        );
    }
    assert!(
        ports.iter().any(|p| p.contains("SIGNET_HTTP_PORT"))
            && ports.iter().any(|p| p.contains("SIGNET_HTTPS_PORT")),
        "host ports come from SIGNET_HTTP_PORT / SIGNET_HTTPS_PORT: {ports:?}"
    );
    let cv = strings(caddy.get("volumes"));
    let caddyfile = cv
        .iter()
        .find(|v| v.contains("/etc/caddy/Caddyfile"))
        .expect("caddy mounts a Caddyfile");
    let src = caddyfile.split(':').next().expect("mount source");
    assert!(
        deploy("docker").join(src).is_file(),
        "Caddyfile mount source {src} missing"
    );
    assert_eq!(
        caddy
            .get("depends_on")
            .and_then(|d| d.get("signet"))
            .and_then(|s| s.get("condition"))
            .and_then(Value::as_str),
        Some("service_healthy")
    );

    // Named volumes are declared.
    let declared = c
        .get("volumes")
        .and_then(Value::as_mapping)
        .expect("top-level volumes");
    for v in volumes.iter().chain(cv.iter()) {
        let name = v.split(':').next().expect("volume source");
        if !name.starts_with('.') && !name.starts_with('/') {
            assert!(declared.contains_key(name), "volume {name} is not declared");
        }
    }
}

#[test]
fn compose_subnet_is_the_entrypoints_default_trusted_proxy() {
    let c = compose();
    let subnets = compose_subnets(&c);
    assert_eq!(subnets.len(), 1, "one fixed subnet expected: {subnets:?}");
    assert_eq!(default_trusted_proxies(), subnets);
    // And both services sit on that network.
    let net = c
        .get("networks")
        .and_then(Value::as_mapping)
        .and_then(|m| m.keys().next())
        .and_then(Value::as_str)
        .expect("network name")
        .to_string();
    for s in ["signet", "caddy"] {
        assert!(
            strings(service(&c, s).get("networks")).contains(&net),
            "{s} is not on network {net}"
        );
    }
    // .env.example documents the same default.
    let env = read("docker/.env.example");
    assert!(
        env.contains(&format!("SIGNET_TRUSTED_PROXIES={}", subnets[0])),
        ".env.example must default SIGNET_TRUSTED_PROXIES to {}",
        subnets[0]
    );
}

#[test]
fn env_example_names_every_variable_compose_uses() {
    let env = read("docker/.env.example");
    for var in [
        "SIGNET_DOMAIN=",
        "SIGNET_HTTP_PORT=",
        "SIGNET_HTTPS_PORT=",
        "SIGNET_TRUSTED_PROXIES=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(var)),
            ".env.example lacks {var}"
        );
    }
}

// ---------------------------------------------------------------------------
// entrypoint.sh
// ---------------------------------------------------------------------------

#[test]
fn entrypoint_writes_a_team_config_on_first_start() {
    let dir = tempfile::tempdir().expect("tmp");
    // A workspace that does not exist yet is created.
    let ws = dir.path().join("nested").join("ws");
    let out = entrypoint(&ws, None, &["true"]);
    assert_ok(&out);

    let settings = settings_in(&ws);
    assert_eq!(settings.auth.mode, AuthMode::Team);
    let subnets = compose_subnets(&compose());
    assert!(
        settings.auth.trusted_proxies.contains(&subnets[0]),
        "trustedProxies {:?} lacks the compose subnet {}",
        settings.auth.trusted_proxies,
        subnets[0]
    );

    // The daemon's own start-up check accepts it on 0.0.0.0 ...
    let mut config = Config::for_workspace(&ws);
    config.bind = "0.0.0.0".into();
    config.settings = settings;
    signet::app::check_auth(&config).expect("team config binds 0.0.0.0");
    // ... which it would refuse without the entrypoint's config.
    let mut local = Config::for_workspace(&ws);
    local.bind = "0.0.0.0".into();
    assert!(signet::app::check_auth(&local).is_err());
}

#[test]
fn entrypoint_runs_its_command_with_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    let out = entrypoint(
        &ws,
        None,
        &[
            "sh",
            "-c",
            "printf '%s|%s' \"$SIGNET_PATH\" \"$1\"",
            "argv0",
            "arg one",
        ],
    );
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}|arg one", ws.display())
    );
    // The command's exit status is the container's.
    let out = entrypoint(&ws, None, &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn entrypoint_never_overwrites_an_existing_config() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    assert_ok(&entrypoint(&ws, None, &["true"]));
    let path = ws.join("agent.yaml");
    let edited = "auth:\n  mode: hybrid\n  trustedProxies:\n    - 10.1.0.0/16\n";
    std::fs::write(&path, edited).expect("edit");

    assert_ok(&entrypoint(&ws, Some("192.168.0.0/16"), &["true"]));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), edited);

    // Nor does it shadow another config file name the daemon reads.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("config.yaml"), "auth:\n  mode: team\n").expect("write");
    assert_ok(&entrypoint(&other, None, &["true"]));
    assert!(!other.join("agent.yaml").exists());

    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&ws)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["agent.yaml".to_string()]);
}

#[test]
fn entrypoint_takes_trusted_proxies_from_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    assert_ok(&entrypoint(
        &ws,
        Some("10.0.0.0/8,192.168.0.0/16"),
        &["true"],
    ));
    let settings = settings_in(&ws);
    assert_eq!(settings.auth.mode, AuthMode::Team);
    assert_eq!(
        settings.auth.trusted_proxies,
        vec!["10.0.0.0/8".to_string(), "192.168.0.0/16".to_string()]
    );
    let mut config = Config::for_workspace(&ws);
    config.bind = "0.0.0.0".into();
    config.settings = settings;
    signet::app::check_auth(&config).expect("check_auth");

    // Blanks around entries and IPv6 are fine; `none` is an empty list.
    let ws6 = dir.path().join("ws6");
    assert_ok(&entrypoint(
        &ws6,
        Some(" 10.0.0.0/8 , fd00::/8 "),
        &["true"],
    ));
    assert_eq!(
        settings_in(&ws6).auth.trusted_proxies,
        vec!["10.0.0.0/8".to_string(), "fd00::/8".to_string()]
    );
    let none = dir.path().join("none");
    assert_ok(&entrypoint(&none, Some("none"), &["true"]));
    let s = settings_in(&none);
    assert_eq!(s.auth.mode, AuthMode::Team);
    assert!(s.auth.trusted_proxies.is_empty());
}

#[test]
fn entrypoint_rejects_values_that_are_not_cidrs() {
    let dir = tempfile::tempdir().expect("tmp");
    for (i, bad) in [
        "10.0.0.1",
        "10.0.0.0/8\"\n  mode: local",
        "10.0.0.0/8,evil.example/8",
        ",,",
    ]
    .into_iter()
    .enumerate()
    {
        let ws = dir.path().join(format!("ws{i}"));
        let out = entrypoint(&ws, Some(bad), &["true"]);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SIGNET_TRUSTED_PROXIES"),
            "error names the variable: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!ws.join("agent.yaml").exists(), "{bad:?} wrote a config");
    }
}

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

/// Dockerfile instructions with continuation lines joined and comments
/// dropped: (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("docker/Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let full = std::mem::take(&mut cur);
        let (ins, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        out.push((ins.to_uppercase(), args.trim().to_string()));
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_healthcheck_and_volume() {
    let ins = dockerfile();
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected: {froms:?}");
    let builder = froms[0].to_lowercase();
    assert!(
        builder.starts_with("rust:1-bookworm") && builder.ends_with(" as builder"),
        "first stage: {builder}"
    );
    assert!(
        froms
            .last()
            .expect("final stage")
            .starts_with("debian:bookworm-slim"),
        "runtime stage: {froms:?}"
    );
    let runs: Vec<&String> = ins
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| a)
        .collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "builder runs cargo build --release --locked"
    );
    assert!(
        ins.iter()
            .any(|(i, a)| i == "COPY" && a.starts_with("--from=builder")),
        "runtime copies the binary from the builder"
    );

    // Everything after the last FROM is the runtime stage.
    let last_from = ins.iter().rposition(|(i, _)| i == "FROM").expect("FROM");
    let runtime = &ins[last_from..];
    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("runtime stage sets USER");
    let who = user.split(':').next().unwrap_or_default();
    assert!(
        who != "root" && who != "0",
        "runtime must not run as root: USER {user}"
    );
    let hc = runtime
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .map(|(_, a)| a.clone())
        .expect("HEALTHCHECK");
    assert!(hc.contains("/health"), "HEALTHCHECK: {hc}");
    assert!(
        runtime
            .iter()
            .any(|(i, a)| i == "VOLUME" && a.contains("/data")),
        "VOLUME /data"
    );
    assert!(runtime.iter().any(|(i, a)| i == "EXPOSE" && a == "3850"));
    let env: String = runtime
        .iter()
        .filter(|(i, _)| i == "ENV")
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for kv in [
        "SIGNET_PATH=/data",
        "SIGNET_BIND=0.0.0.0",
        "SIGNET_PORT=3850",
    ] {
        assert!(env.contains(kv), "ENV lacks {kv}: {env}");
    }
    let entry = runtime
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, a)| a.clone())
        .expect("ENTRYPOINT");
    assert!(entry.contains("entrypoint"), "ENTRYPOINT: {entry}");
    assert!(
        runtime
            .iter()
            .any(|(i, a)| i == "COPY" && a.starts_with("deploy/docker/entrypoint.sh ")),
        "the entrypoint is copied from deploy/docker/entrypoint.sh"
    );
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "CMD" && a == r#"["signet", "serve"]"#));

    // Every COPY source outside the builder exists in the build context (repo root).
    for (i, a) in &ins {
        if i == "COPY" && !a.starts_with("--from") {
            let parts: Vec<&str> = a
                .split_whitespace()
                .filter(|p| !p.starts_with("--"))
                .collect();
            for src in &parts[..parts.len() - 1] {
                assert!(repo().join(src).exists(), "COPY source {src} missing");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reverse-proxy samples
// ---------------------------------------------------------------------------

#[test]
fn nginx_sample_is_sse_safe_and_forwards_the_client() {
    let conf = read("nginx/signet.conf");
    let directives: Vec<&str> = conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |d: &str| directives.iter().any(|l| l.starts_with(d));
    for d in [
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_read_timeout 1h;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Host $host;",
        "ssl_certificate ",
        "ssl_certificate_key ",
    ] {
        assert!(has(d), "nginx sample lacks `{d}`");
    }
    // The SSE location names every stream.
    let sse = directives
        .iter()
        .find(|l| l.starts_with("location") && l.contains("sse"))
        .expect("an SSE location");
    for p in ["sse", "api/events", "api/logs/stream"] {
        assert!(sse.contains(p), "SSE location lacks {p}: {sse}");
    }
    assert!(conf.contains("http://127.0.0.1:3850") || conf.contains("server 127.0.0.1:3850"));
    assert!(
        conf.contains("127.0.0.1/32"),
        "nginx sample explains trustedProxies"
    );
}

#[test]
fn caddyfiles_flush_immediately_for_sse() {
    for (file, upstream) in [
        ("docker/Caddyfile", "reverse_proxy signet:3850"),
        ("caddy/Caddyfile", "reverse_proxy 127.0.0.1:3850"),
    ] {
        let text = read(file);
        let code: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert!(
            code.iter().any(|l| l.starts_with(upstream)),
            "{file} lacks `{upstream}`"
        );
        assert!(
            code.contains(&"flush_interval -1"),
            "{file} lacks `flush_interval -1`"
        );
    }
    assert!(read("docker/Caddyfile").contains("{$SIGNET_DOMAIN}"));
    assert!(read("caddy/Caddyfile").contains("127.0.0.1/32"));
}

// ---------------------------------------------------------------------------
// Linters, when installed
// ---------------------------------------------------------------------------

/// Run `tool args` if `tool` is on PATH; None when it is not installed.
fn run_if_installed(tool: &str, args: &[&Path]) -> Option<Output> {
    match Command::new(tool).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

#[test]
fn linters_pass_when_installed() {
    let checks: [(&str, PathBuf); 2] = [
        ("hadolint", deploy("docker/Dockerfile")),
        ("shellcheck", deploy("docker/entrypoint.sh")),
    ];
    for (tool, file) in checks {
        match run_if_installed(tool, &[&file]) {
            None => println!("{tool} not found on PATH: not run on {}", file.display()),
            Some(out) => {
                assert!(
                    out.status.success(),
                    "{tool} {} failed:\n{}{}",
                    file.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                println!("{tool} passed on {}", file.display());
            }
        }
    }
}
