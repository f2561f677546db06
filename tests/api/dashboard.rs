//! The dashboard in a real browser: Debian's headless chromium driven by
//! playwright-core (`tests/browser/dashboard.mjs`) against a local-mode and
//! a team-mode daemon. Screenshots of every view land in
//! `target/dashboard-screenshots/`.
//!
//! Needs `chromium` and `npm ci --prefix tests/browser` (`.ci/run` does
//! both and sets `SIGNET_REQUIRE_BROWSER`, so there the test cannot skip).

use std::path::{Path, PathBuf};

use serde_json::json;
use signet::auth::Role;

use crate::helpers::*;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether chromium, node and playwright-core are here (or the reason not).
fn tools_missing() -> Option<String> {
    let runs = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !runs("chromium") {
        return Some("chromium is not installed (apt-get install chromium)".into());
    }
    if !runs("node") {
        return Some("node is not installed".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some("playwright-core is missing (npm ci --prefix tests/browser)".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    if let Some(why) = tools_missing() {
        assert!(
            std::env::var_os("SIGNET_REQUIRE_BROWSER").is_none(),
            "SIGNET_REQUIRE_BROWSER is set but {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let model = model_dir().to_string_lossy().into_owned();
    let local = spawn_with(|c| c.settings.embedding.model_path = Some(model.clone())).await;
    let team_app = spawn_with(|c| {
        team(c);
        c.settings.embedding.provider = "none".into();
    })
    .await;
    let admin_token = admin(&team_app);
    let agent_token = token(&team_app, Role::Agent, "agent-alpha", project("alpha"));
    // The agent's own memory, so its list is not empty.
    let r = post_as(
        &team_app,
        "/api/memory/remember",
        json!({"content": "alpha notes for the agent", "project": "alpha"}),
        &agent_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    let out = tokio::process::Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("LOCAL_URL", &local.base)
        .env("TEAM_URL", &team_app.base)
        .env("ADMIN_TOKEN", &admin_token)
        .env("AGENT_TOKEN", &agent_token)
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), out)
        .await
        .expect("the browser run finished within 4 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    // The whole log was printed above; the failure names only what failed,
    // so it survives a CI log that keeps just the tail.
    let failed: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("ok ")).collect();
    let stderr_lines: Vec<&str> = stderr.lines().collect();
    let stderr_tail = stderr_lines[stderr_lines.len().saturating_sub(20)..].join("\n");
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "browser checks failed ({}):\n{}\nstderr (last lines):\n{stderr_tail}",
        out.status,
        failed.join("\n")
    );
    for view in [
        "memories",
        "search",
        "detail",
        "live",
        "health",
        "performance",
        "access",
        "login",
    ] {
        assert!(
            shots.join(format!("{view}.png")).is_file(),
            "no screenshot of {view}"
        );
    }
    local.stop().await;
    team_app.stop().await;
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let t = spawn_with(team).await;
    // No token needed for the page itself (it holds no data) ...
    let r = t.client.get(t.url("/")).send().await.expect("get /");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().expect("ascii");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"<script type="module" src="/dashboard/app.js">"#));
    assert!(!html.contains("<script>"), "no inline script");
    // ... nor for its modules, which revalidate by ETag ...
    let r = t
        .client
        .get(t.url("/dashboard/app.js"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/javascript"));
    let etag = r.headers()["etag"].clone();
    let r = t
        .client
        .get(t.url("/dashboard/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 304);
    // ... but the data still needs one, and nothing outside the files is served.
    assert_eq!(t.get("/api/memories").await.status, 401);
    // whoami tells the page what the token may do (it hides the rest).
    let agent = token(&t, Role::Agent, "agent-a", project("a"));
    let r = get_as(&t, "/api/auth/whoami", &agent).await;
    assert_eq!(r.body["role"], "agent", "{}", r.body);
    assert_eq!(
        r.body["permissions"],
        json!([
            "remember",
            "recall",
            "modify",
            "forget",
            "recover",
            "documents"
        ])
    );
    for path in [
        "/dashboard/../Cargo.toml",
        "/dashboard/nope.js",
        "/dashboard/%2e%2e/src/main.rs",
        "/index.html",
    ] {
        let r = t.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(is_json(&r), "{path}");
    }
    // A page on another site cannot pull the dashboard into a frame or a
    // rebinding name: the browser boundary applies to it too.
    let r = t
        .client
        .get(t.url("/"))
        .header("host", "evil.example:80")
        .send()
        .await
        .expect("get");
    assert!(
        r.status() == 403 || t.base.contains("127.0.0.1"),
        "{}",
        r.status()
    );
    t.stop().await;
}

#[tokio::test]
async fn the_list_filters_and_counts_on_the_server() {
    let t = spawn_with(|c| c.settings.embedding.provider = "none".into()).await;
    for (i, (kind, project, who, tags, pinned)) in [
        ("fact", "a", "ann", "x,y", false),
        ("decision", "a", "bob", "x", true),
        ("fact", "b", "ann", "y", false),
        ("fact", "a", "ann", "", false),
    ]
    .into_iter()
    .enumerate()
    {
        let r = t
            .post(
                "/api/memory/remember",
                json!({"content": format!("memory {i}"), "type": kind, "project": project,
                       "who": who, "tags": tags, "pinned": pinned}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let count = |q: &'static str| {
        let t = &t;
        async move {
            let r = t.get(&format!("/api/memories?limit=2&{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            (
                r.body["count"].as_i64().expect("count"),
                r.body["memories"].as_array().expect("rows").len(),
                r.body["stats"]["total"].as_i64().expect("total"),
            )
        }
    };
    assert_eq!(count("").await, (4, 2, 4));
    assert_eq!(
        count("type=").await,
        (4, 2, 4),
        "empty values are no filter"
    );
    assert_eq!(count("type=fact").await, (3, 2, 4));
    assert_eq!(count("project=a&who=ann").await, (2, 2, 4));
    assert_eq!(count("tags=x").await, (2, 2, 4));
    assert_eq!(count("tags=x,y").await, (1, 1, 4));
    assert_eq!(count("pinned=true").await, (1, 1, 4));
    assert_eq!(count("since=2999-01-01").await, (0, 0, 4));
    assert_eq!(count("until=2999-01-01&offset=3").await, (4, 1, 4));
    assert_error(&t.get("/api/memories?pinned=maybe").await, 400);
    assert_error(&t.get("/api/memories?importance_min=high").await, 400);
    t.stop().await;
}
