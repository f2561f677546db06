//! Black-box tests of auth (SPEC §3 and §4, issue 3): modes, tokens, the
//! role matrix on every route, scopes on every read and write, hybrid
//! locality, minting, revocation, the rate-limit ledger, the audit trail,
//! the token CLI and startup refusals. Each test starts real daemons on
//! port 0 over temp workspaces and talks to them over HTTP only; tokens are
//! signed with the workspace secret the daemon created.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use signet::auth::{Claims, Role};
use signet::config::{AuthMode, Config};
use signet::store::Scope;

use crate::helpers::{
    admin, delete_q_as, get_as, into_resp, limit, now, post_as, project, remember_as, request,
    secret_of, sign, spawn_app, spawn_in, spawn_with, team, token, Resp, TestApp,
};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// A public address a trusted proxy reports as the client.
const REMOTE: &str = "203.0.113.7";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn hybrid(cfg: &mut Config) {
    cfg.settings.auth.mode = AuthMode::Hybrid;
}

fn hybrid_behind_proxy(cfg: &mut Config) {
    cfg.settings.auth.mode = AuthMode::Hybrid;
    cfg.settings.auth.trusted_proxies = vec!["127.0.0.0/8".into()];
}

/// A token over an arbitrary payload, correctly signed with `secret`.
fn forge(payload: &[u8], secret: &[u8]) -> String {
    let p = URL_SAFE_NO_PAD.encode(payload);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac key");
    m.update(p.as_bytes());
    format!("{p}.{}", URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
}

async fn whoami(t: &TestApp, tok: &str) -> Resp {
    get_as(t, "/api/auth/whoami", tok).await
}

/// Delete as `tok`; asserts the record was deleted.
async fn delete_as(t: &TestApp, id: &str, tok: &str) {
    let r = delete_q_as(t, id, "reason=test", Some(tok)).await;
    assert_eq!(r.status, 200, "delete {id}: {:?}", r.body);
    assert_eq!(r.body["status"], "deleted", "{:?}", r.body);
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// 401 with exactly `{"error": reason}` and `WWW-Authenticate: Bearer`.
fn assert_unauthorized(r: &Resp, reason: &str, ctx: &str) {
    assert_eq!(r.status, 401, "{ctx}: body {:?}", r.body);
    assert_eq!(r.body, json!({ "error": reason }), "{ctx}");
    assert_eq!(
        header(r, "www-authenticate"),
        Some("Bearer"),
        "{ctx}: headers {:?}",
        r.headers
    );
}

/// 403 with exactly `{"error":"role 'X' lacks 'Y' permission"}`.
fn assert_lacks(r: &Resp, role: &str, perm: &str, ctx: &str) {
    assert_eq!(r.status, 403, "{ctx}: body {:?}", r.body);
    assert_eq!(
        r.body,
        json!({ "error": format!("role '{role}' lacks '{perm}' permission") }),
        "{ctx}"
    );
}

/// 403 for a record outside the caller's scope.
fn assert_out_of_scope(r: &Resp, ctx: &str) {
    assert_eq!(r.status, 403, "{ctx}: body {:?}", r.body);
    let msg = r.body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("outside the token's scope"),
        "{ctx}: error {:?}",
        r.body
    );
}

/// A 429 from the ledger: exact body shape, retry time in the future and a
/// whole-seconds `Retry-After`.
fn assert_rate_limited(r: &Resp, ctx: &str) {
    assert_eq!(r.status, 429, "{ctx}: body {:?}", r.body);
    let obj = r.body.as_object().expect("object body");
    assert_eq!(obj.len(), 2, "{ctx}: exactly error and retryAfter: {obj:?}");
    assert_eq!(r.body["error"], "rate limit exceeded", "{ctx}");
    let retry = r.body["retryAfter"]
        .as_i64()
        .unwrap_or_else(|| panic!("{ctx}: retryAfter must be an integer: {:?}", r.body));
    let now = now_ms();
    assert!(retry > now, "{ctx}: retryAfter {retry} is not after {now}");
    assert!(
        retry <= now + 61_000,
        "{ctx}: retryAfter {retry} beyond the window"
    );
    let secs: u64 = header(r, "retry-after")
        .unwrap_or_else(|| panic!("{ctx}: Retry-After missing: {:?}", r.headers))
        .parse()
        .unwrap_or_else(|_| panic!("{ctx}: Retry-After not whole seconds"));
    assert!((1..=60).contains(&secs), "{ctx}: Retry-After {secs}");
}

fn ids_of(list: &Value, key: &str) -> BTreeSet<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} must be an array: {list:?}"))
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. the route × role × mode matrix
// ---------------------------------------------------------------------------

/// Every authenticated route of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    ApiStatus,
    Remember,
    Recall,
    ApiSearch,
    LegacySearch,
    List,
    Get,
    History,
    Patch,
    Delete,
    Recover,
    BatchForget,
    BatchModify,
    Mint,
    Revoke,
    Whoami,
    AuthStatus,
}

const ROUTES: [Route; 17] = [
    Route::ApiStatus,
    Route::Remember,
    Route::Recall,
    Route::ApiSearch,
    Route::LegacySearch,
    Route::List,
    Route::Get,
    Route::History,
    Route::Patch,
    Route::Delete,
    Route::Recover,
    Route::BatchForget,
    Route::BatchModify,
    Route::Mint,
    Route::Revoke,
    Route::Whoami,
    Route::AuthStatus,
];

impl Route {
    /// The permission the route needs; `None`: any authenticated caller.
    fn permission(self) -> Option<&'static str> {
        match self {
            Route::ApiStatus
            | Route::Recall
            | Route::ApiSearch
            | Route::LegacySearch
            | Route::List
            | Route::Get
            | Route::History => Some("recall"),
            Route::Remember => Some("remember"),
            Route::Patch | Route::BatchModify => Some("modify"),
            Route::Delete | Route::BatchForget => Some("forget"),
            Route::Recover => Some("recover"),
            Route::Mint | Route::Revoke => Some("admin"),
            Route::Whoami | Route::AuthStatus => None,
        }
    }

    fn mutates_a_record(self) -> bool {
        matches!(
            self,
            Route::Patch | Route::Delete | Route::Recover | Route::BatchModify
        )
    }
}

/// The contract's role → permission matrix, written out independently of
/// the server's `Role::allows`.
fn role_allows(role: &str, perm: &str) -> bool {
    match role {
        "admin" => true,
        "operator" => [
            "remember",
            "recall",
            "modify",
            "forget",
            "recover",
            "documents",
            "connectors",
            "diagnostics",
            "analytics",
        ]
        .contains(&perm),
        "agent" => [
            "remember",
            "recall",
            "modify",
            "forget",
            "recover",
            "documents",
        ]
        .contains(&perm),
        "readonly" => perm == "recall",
        _ => false,
    }
}

/// One daemon of the matrix and the headers every request to it carries.
struct MatrixServer {
    mode: &'static str,
    t: TestApp,
    headers: Vec<(&'static str, &'static str)>,
    admin: String,
    counter: AtomicUsize,
}

impl MatrixServer {
    async fn call(&self, method: &str, path: &str, body: Option<Value>, tok: Option<&str>) -> Resp {
        request(&self.t, method, path, body, tok, &self.headers).await
    }

    /// A new live record (created by the admin).
    async fn fresh(&self, label: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let r = self
            .call(
                "POST",
                "/api/memory/remember",
                Some(json!({ "content": format!("matrix record {n} {label}") })),
                Some(&self.admin),
            )
            .await;
        assert_eq!(r.status, 200, "{}: setup remember: {:?}", self.mode, r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// A new tombstone (created and deleted by the admin).
    async fn tombstone(&self, label: &str) -> String {
        let id = self.fresh(label).await;
        let r = self
            .call(
                "DELETE",
                &format!("/api/memory/{id}?reason=test"),
                None,
                Some(&self.admin),
            )
            .await;
        assert_eq!(r.status, 200, "{}: setup delete: {:?}", self.mode, r.body);
        id
    }

    /// The record as the admin sees it (status, body).
    async fn admin_get(&self, id: &str) -> Resp {
        self.call("GET", &format!("/api/memory/{id}"), None, Some(&self.admin))
            .await
    }
}

async fn matrix_server(mode: &'static str) -> MatrixServer {
    let (t, headers) = match mode {
        "team" => (spawn_with(team).await, vec![]),
        "hybrid-remote" => (
            spawn_with(hybrid_behind_proxy).await,
            vec![("x-forwarded-for", REMOTE)],
        ),
        other => unreachable!("mode {other}"),
    };
    let admin = token(&t, Role::Admin, "matrix-setup-admin", Scope::default());
    MatrixServer {
        mode,
        t,
        headers,
        admin,
        counter: AtomicUsize::new(0),
    }
}

/// Run one (route, role) cell and check status, body and side effects.
async fn matrix_case(s: &MatrixServer, route: Route, role: Option<Role>) -> u16 {
    let role_name = role.map_or("none", Role::as_str);
    let ctx = format!("[{} {route:?} as {role_name}]", s.mode);
    let sub = format!("matrix-{role_name}");
    let tok = role.map(|r| token(&s.t, r, &sub, Scope::default()));
    let label = format!("{route:?}-{role_name}");

    // Fresh records per cell so every expected success really succeeds.
    let id = match route {
        Route::Recover => Some(s.tombstone(&label).await),
        Route::Get
        | Route::History
        | Route::Patch
        | Route::Delete
        | Route::BatchForget
        | Route::BatchModify => Some(s.fresh(&label).await),
        _ => None,
    };
    let id_ref = id.as_deref().unwrap_or("");
    let n = s.counter.fetch_add(1, Ordering::SeqCst);
    let remembered = format!("matrix remembered {n} by {role_name}");
    let (method, path, body): (&str, String, Option<Value>) = match route {
        Route::ApiStatus => ("GET", "/api/status".into(), None),
        Route::Remember => (
            "POST",
            "/api/memory/remember".into(),
            Some(json!({ "content": remembered })),
        ),
        Route::Recall => (
            "POST",
            "/api/memory/recall".into(),
            Some(json!({ "query": "matrix" })),
        ),
        Route::ApiSearch => ("GET", "/api/memory/search?q=matrix".into(), None),
        Route::LegacySearch => ("GET", "/memory/search?q=matrix".into(), None),
        Route::List => ("GET", "/api/memories".into(), None),
        Route::Get => ("GET", format!("/api/memory/{id_ref}"), None),
        Route::History => ("GET", format!("/api/memory/{id_ref}/history"), None),
        Route::Patch => (
            "PATCH",
            format!("/api/memory/{id_ref}"),
            Some(json!({ "importance": 0.3, "reason": "matrix" })),
        ),
        Route::Delete => ("DELETE", format!("/api/memory/{id_ref}?reason=test"), None),
        Route::Recover => (
            "POST",
            format!("/api/memory/{id_ref}/recover"),
            Some(json!({ "reason": "matrix" })),
        ),
        Route::BatchForget => (
            "POST",
            "/api/memory/forget".into(),
            Some(json!({ "ids": [id_ref] })),
        ),
        Route::BatchModify => (
            "POST",
            "/api/memory/modify".into(),
            Some(json!({ "patches": [{ "id": id_ref, "importance": 0.4 }], "reason": "matrix" })),
        ),
        Route::Mint => (
            "POST",
            "/api/auth/token".into(),
            Some(json!({ "role": "readonly", "sub": format!("minted-{n}"), "ttlSeconds": 60 })),
        ),
        Route::Revoke => (
            "POST",
            "/api/auth/revoke".into(),
            Some(json!({ "jti": format!("never-issued-{n}") })),
        ),
        Route::Whoami => ("GET", "/api/auth/whoami".into(), None),
        Route::AuthStatus => ("GET", "/api/auth/status".into(), None),
    };
    let r = s.call(method, &path, body, tok.as_deref()).await;

    let allowed = match (role, route.permission()) {
        (None, _) => {
            assert_unauthorized(&r, "authentication required", &ctx);
            false
        }
        (Some(_), None) => true,
        (Some(_), Some(perm)) if role_allows(role_name, perm) => true,
        (Some(_), Some(perm)) => {
            assert_lacks(&r, role_name, perm, &ctx);
            false
        }
    };

    if !allowed {
        // A refused mutation changed nothing.
        if route.mutates_a_record() {
            let g = s.admin_get(id_ref).await;
            if route == Route::Recover {
                assert_eq!(g.status, 404, "{ctx}: tombstone must stay deleted");
            } else {
                assert_eq!(g.status, 200, "{ctx}: record must stay live: {:?}", g.body);
                assert_eq!(g.body["version"], 1, "{ctx}: record must be unchanged");
            }
        }
        if route == Route::Remember {
            let found = s
                .call(
                    "POST",
                    "/api/memory/recall",
                    Some(json!({ "query": remembered })),
                    Some(&s.admin),
                )
                .await;
            assert_eq!(found.status, 200, "{ctx}");
            assert!(
                found.body["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .all(|x| x["content"] != remembered.as_str()),
                "{ctx}: a refused remember stored its record"
            );
        }
        return r.status;
    }

    assert_eq!(r.status, 200, "{ctx}: expected success, body {:?}", r.body);
    let b = &r.body;
    match route {
        Route::ApiStatus => assert_eq!(b["status"], "running", "{ctx}"),
        Route::Remember => {
            assert!(b["id"].as_str().is_some_and(|i| !i.is_empty()), "{ctx}");
            assert_eq!(b["content"], remembered.as_str(), "{ctx}");
        }
        Route::Recall | Route::ApiSearch | Route::LegacySearch => {
            let results = b["results"].as_array().expect("results");
            assert!(!results.is_empty(), "{ctx}: matrix records exist: {b:?}");
        }
        Route::List => {
            assert!(
                !b["memories"].as_array().expect("memories").is_empty(),
                "{ctx}"
            );
        }
        Route::Get => assert_eq!(b["id"], id_ref, "{ctx}"),
        Route::History => {
            assert_eq!(b["memoryId"], id_ref, "{ctx}");
            assert_eq!(b["history"][0]["event"], "created", "{ctx}");
        }
        Route::Patch => {
            assert_eq!(b["status"], "updated", "{ctx}: {b:?}");
            let g = s.admin_get(id_ref).await;
            assert_eq!(g.body["importance"], 0.3, "{ctx}");
            assert_eq!(g.body["updated_by"], sub.as_str(), "{ctx}");
        }
        Route::Delete => {
            assert_eq!(b["status"], "deleted", "{ctx}: {b:?}");
            assert_eq!(s.admin_get(id_ref).await.status, 404, "{ctx}");
        }
        Route::Recover => {
            assert_eq!(b["status"], "recovered", "{ctx}: {b:?}");
            assert_eq!(s.admin_get(id_ref).await.status, 200, "{ctx}");
        }
        Route::BatchForget => {
            assert_eq!(b["mode"], "preview", "{ctx}: {b:?}");
            assert_eq!(b["count"], 1, "{ctx}: {b:?}");
            assert_eq!(b["candidates"][0]["id"], id_ref, "{ctx}");
        }
        Route::BatchModify => {
            assert_eq!(b["total"], 1, "{ctx}: {b:?}");
            assert_eq!(b["updated"], 1, "{ctx}: {b:?}");
            assert_eq!(b["results"][0]["status"], "updated", "{ctx}: {b:?}");
        }
        Route::Mint => {
            let minted = b["token"].as_str().expect("token");
            let w = s.call("GET", "/api/auth/whoami", None, Some(minted)).await;
            assert_eq!(w.status, 200, "{ctx}: minted token works: {:?}", w.body);
            assert_eq!(w.body["claims"]["sub"], format!("minted-{n}"), "{ctx}");
            assert_eq!(w.body["claims"]["role"], "readonly", "{ctx}");
        }
        Route::Revoke => {
            assert_eq!(b["revoked"], true, "{ctx}: {b:?}");
            assert_eq!(b["jti"], format!("never-issued-{n}"), "{ctx}");
        }
        Route::Whoami => {
            assert_eq!(b["authenticated"], true, "{ctx}: {b:?}");
            assert_eq!(b["claims"]["sub"], sub.as_str(), "{ctx}");
            assert_eq!(b["claims"]["role"], role_name, "{ctx}");
            let mode = if s.mode == "team" { "team" } else { "hybrid" };
            assert_eq!(b["mode"], mode, "{ctx}");
        }
        Route::AuthStatus => {
            let mode = if s.mode == "team" { "team" } else { "hybrid" };
            assert_eq!(b["mode"], mode, "{ctx}: {b:?}");
        }
    }
    200
}

#[tokio::test]
async fn every_route_answers_each_role_with_success_401_or_403_per_the_matrix_in_team_and_remote_hybrid_mode(
) {
    let roles = [
        Some(Role::Admin),
        Some(Role::Operator),
        Some(Role::Agent),
        Some(Role::Readonly),
        None,
    ];
    for mode in ["team", "hybrid-remote"] {
        let s = matrix_server(mode).await;
        let mut tally = std::collections::BTreeMap::<u16, usize>::new();
        for route in ROUTES {
            for role in roles {
                *tally.entry(matrix_case(&s, route, role).await).or_default() += 1;
            }
        }
        // 17 routes x 5 callers: admin 17, operator 15, agent 15 and
        // readonly 9 successes; 12 refusals for lack of permission; 17
        // refusals for lack of a token.
        assert_eq!(
            tally,
            std::collections::BTreeMap::from([(200, 56), (401, 17), (403, 12)]),
            "{mode}"
        );
        s.t.stop().await;
    }
}

/// A named configuration and the headers its requests carry.
type ModeCase = (
    &'static str,
    fn(&mut Config),
    &'static [(&'static str, &'static str)],
);

#[tokio::test]
async fn health_is_open_without_a_token_in_every_mode() {
    let modes: [ModeCase; 4] = [
        ("local", |_| {}, &[]),
        ("team", team, &[]),
        (
            "hybrid-remote",
            hybrid_behind_proxy,
            &[("x-forwarded-for", REMOTE)],
        ),
        (
            "hybrid-untrusted-forwarding",
            hybrid,
            &[("x-forwarded-for", REMOTE)],
        ),
    ];
    for (name, tweak, headers) in modes {
        let t = spawn_with(tweak).await;
        let r = request(&t, "GET", "/health", None, None, headers).await;
        assert_eq!(r.status, 200, "{name}: {:?}", r.body);
        assert_eq!(r.body["status"], "healthy", "{name}");
        // The same daemon does demand a token elsewhere (local excepted).
        let s = request(&t, "GET", "/api/memories", None, None, headers).await;
        if name == "local" {
            assert_eq!(s.status, 200, "{name}: {:?}", s.body);
        } else {
            assert_unauthorized(&s, "authentication required", name);
        }
        t.stop().await;
    }
}

// ---------------------------------------------------------------------------
// 2. scopes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_project_scoped_token_reads_and_writes_only_its_project_and_admin_bypasses_scope() {
    let t = spawn_with(team).await;
    let adm = admin(&t);
    let alpha = token(&t, Role::Agent, "alpha-agent", project("alpha"));
    let alpha_ro = token(&t, Role::Readonly, "alpha-reader", project("alpha"));

    // Remember stamps the scope; an explicit conflicting value is 403.
    let a1 = remember_as(
        &t,
        json!({ "content": "alpha owned note about otters" }),
        Some(&alpha),
    )
    .await;
    let g = get_as(&t, &format!("/api/memory/{a1}"), &adm).await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert_eq!(g.body["project"], "alpha");
    let r = post_as(
        &t,
        "/api/memory/remember",
        json!({ "content": "smuggled into beta", "project": "beta" }),
        &alpha,
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        r.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("beta") && e.contains("scope")),
        "{:?}",
        r.body
    );
    let a2 = remember_as(
        &t,
        json!({ "content": "alpha explicit project note", "project": "alpha" }),
        Some(&alpha),
    )
    .await;

    // Records of project beta, written by the admin.
    let b1 = remember_as(
        &t,
        json!({ "content": "beta secret plan", "project": "beta", "who": "beta-writer" }),
        Some(&adm),
    )
    .await;
    let b_dead = remember_as(
        &t,
        json!({ "content": "beta tombstone", "project": "beta" }),
        Some(&adm),
    )
    .await;
    delete_as(&t, &b_dead, &adm).await;

    // Single-record reads and writes of a beta record: 403, nothing changes.
    for (tok, who) in [(&alpha, "agent"), (&alpha_ro, "readonly")] {
        let r = get_as(&t, &format!("/api/memory/{b1}"), tok).await;
        assert_out_of_scope(&r, &format!("GET as scoped {who}"));
        let r = get_as(&t, &format!("/api/memory/{b1}/history"), tok).await;
        assert_out_of_scope(&r, &format!("history as scoped {who}"));
        let r = get_as(&t, &format!("/api/memory/{b_dead}/history"), tok).await;
        assert_out_of_scope(&r, &format!("history of a tombstone as scoped {who}"));
    }
    let r = request(
        &t,
        "PATCH",
        &format!("/api/memory/{b1}"),
        Some(json!({ "content": "hijacked", "reason": "x" })),
        Some(&alpha),
        &[],
    )
    .await;
    assert_out_of_scope(&r, "PATCH");
    assert_eq!(r.body["status"], "out_of_scope", "{:?}", r.body);
    assert_eq!(r.body["id"], b1.as_str());
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{b1}?reason=test"),
        None,
        Some(&alpha),
        &[],
    )
    .await;
    assert_out_of_scope(&r, "DELETE");
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{b1}?force=true&reason=x"),
        None,
        Some(&alpha),
        &[],
    )
    .await;
    assert_out_of_scope(&r, "forced DELETE");
    let r = post_as(
        &t,
        &format!("/api/memory/{b_dead}/recover"),
        json!({ "reason": "undo" }),
        &alpha,
    )
    .await;
    assert_out_of_scope(&r, "recover");
    let g = get_as(&t, &format!("/api/memory/{b1}"), &adm).await;
    assert_eq!(g.status, 200, "beta record still live: {:?}", g.body);
    assert_eq!(g.body["content"], "beta secret plan");
    assert_eq!(g.body["version"], 1);
    assert_eq!(
        get_as(&t, &format!("/api/memory/{b_dead}"), &adm)
            .await
            .status,
        404,
        "beta tombstone still deleted"
    );

    // Recall is filtered inside the query: 25 strong beta matches do not
    // push the one weak alpha match out of the candidate window.
    let mut beta_zebras = Vec::new();
    for i in 0..25 {
        beta_zebras.push(
            remember_as(
                &t,
                json!({ "content": format!("zebra zebra zebra herd {i}"), "project": "beta" }),
                Some(&adm),
            )
            .await,
        );
    }
    let a_zebra = remember_as(
        &t,
        json!({ "content": "one zebra was seen near the alpha office among many other animals and plenty of unrelated words" }),
        Some(&alpha),
    )
    .await;
    let r = post_as(&t, "/api/memory/recall", json!({ "query": "zebra" }), &adm).await;
    assert_eq!(r.status, 200);
    assert!(
        !ids_of(&r.body, "results").contains(&a_zebra),
        "premise: unscoped the alpha match is outranked: {:?}",
        r.body
    );
    for (tok, who) in [(&alpha, "agent"), (&alpha_ro, "readonly")] {
        let r = post_as(&t, "/api/memory/recall", json!({ "query": "zebra" }), tok).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            ids_of(&r.body, "results"),
            BTreeSet::from([a_zebra.clone()]),
            "recall as scoped {who}: {:?}",
            r.body
        );
        for path in ["/api/memory/search?q=zebra", "/memory/search?q=zebra"] {
            let r = get_as(&t, path, tok).await;
            assert_eq!(r.status, 200, "{path}: {:?}", r.body);
            assert_eq!(
                ids_of(&r.body, "results"),
                BTreeSet::from([a_zebra.clone()]),
                "{path} as scoped {who}"
            );
        }
        // Asking for beta explicitly does not widen the scope.
        let r = post_as(
            &t,
            "/api/memory/recall",
            json!({ "query": "zebra", "project": "beta" }),
            tok,
        )
        .await;
        assert!(
            r.status == 403 || (r.status == 200 && ids_of(&r.body, "results").is_empty()),
            "recall of project beta as scoped {who}: {} {:?}",
            r.status,
            r.body
        );
    }

    // Listing shows only alpha rows, statistics included.
    let alpha_ids = BTreeSet::from([a1.clone(), a2.clone(), a_zebra.clone()]);
    let r = get_as(&t, "/api/memories?limit=1000", &alpha).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids_of(&r.body, "memories"), alpha_ids);
    assert_eq!(r.body["stats"]["total"], 3, "{:?}", r.body["stats"]);
    let r = get_as(&t, "/memory/search?distinct=who", &alpha).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        !r.body["values"]
            .as_array()
            .expect("values")
            .contains(&json!("beta-writer")),
        "distinct who leaks beta writers: {:?}",
        r.body
    );

    // Batch forget: the preview lists alpha candidates only; execution
    // never touches beta rows.
    let r = post_as(
        &t,
        "/api/memory/forget",
        json!({ "query": "zebra" }),
        &alpha,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        ids_of(&r.body, "candidates"),
        BTreeSet::from([a_zebra.clone()])
    );
    assert_eq!(r.body["count"], 1);
    let mut mixed: Vec<String> = beta_zebras[..3].to_vec();
    mixed.push(a2.clone());
    let r = post_as(&t, "/api/memory/forget", json!({ "ids": mixed }), &alpha).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids_of(&r.body, "candidates"), BTreeSet::from([a2.clone()]));
    let r = post_as(
        &t,
        "/api/memory/forget",
        json!({ "ids": [b1, a2], "mode": "execute", "reason": "cleanup" }),
        &alpha,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["deleted"], 1, "{:?}", r.body);
    assert!(
        r.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|x| x["id"] != b1.as_str() || x["status"] != "deleted"),
        "{:?}",
        r.body
    );
    assert_eq!(
        get_as(&t, &format!("/api/memory/{b1}"), &adm).await.status,
        200
    );
    assert_eq!(
        get_as(&t, &format!("/api/memory/{a2}"), &adm).await.status,
        404
    );

    // Batch modify is checked per item.
    let r = post_as(
        &t,
        "/api/memory/modify",
        json!({ "patches": [
            { "id": b1, "importance": 0.1 },
            { "id": a1, "importance": 0.2 }
        ], "reason": "tune" }),
        &alpha,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["updated"], 1, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["id"], b1.as_str());
    assert_eq!(r.body["results"][0]["status"], "out_of_scope");
    assert_eq!(r.body["results"][1]["status"], "updated");
    let g = get_as(&t, &format!("/api/memory/{b1}"), &adm).await;
    assert_eq!(g.body["version"], 1, "beta untouched: {:?}", g.body);

    // The scoped agent can still mutate its own rows.
    let r = request(
        &t,
        "PATCH",
        &format!("/api/memory/{a1}"),
        Some(json!({ "content": "alpha owned note about sea otters", "reason": "fix" })),
        Some(&alpha),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = get_as(&t, &format!("/api/memory/{a1}/history"), &alpha).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Admin bypasses scope, even with a scope in its token.
    let scoped_admin = token(&t, Role::Admin, "scoped-admin", project("alpha"));
    for tok in [&adm, &scoped_admin] {
        assert_eq!(
            get_as(&t, &format!("/api/memory/{b1}"), tok).await.status,
            200
        );
        let r = get_as(&t, "/api/memories?limit=1000", tok).await;
        let all = ids_of(&r.body, "memories");
        assert!(all.contains(&b1) && all.contains(&a1), "{:?}", r.body);
        let r = post_as(
            &t,
            "/api/memory/recall",
            json!({ "query": "zebra", "limit": 50 }),
            tok,
        )
        .await;
        let hits = ids_of(&r.body, "results");
        assert!(hits.contains(&a_zebra) && hits.contains(&beta_zebras[0]));
    }
    t.stop().await;
}

#[tokio::test]
async fn agent_and_user_scopes_stamp_and_confine_like_project_scopes() {
    let t = spawn_with(team).await;
    let adm = admin(&t);
    let bot = token(
        &t,
        Role::Agent,
        "bot-1-token",
        Scope {
            agent: Some("bot-1".into()),
            ..Default::default()
        },
    );
    let u1 = token(
        &t,
        Role::Operator,
        "user-1-token",
        Scope {
            user: Some("u1".into()),
            ..Default::default()
        },
    );
    let both = token(
        &t,
        Role::Agent,
        "alpha-u1-token",
        Scope {
            project: Some("alpha".into()),
            user: Some("u1".into()),
            ..Default::default()
        },
    );

    let mine = remember_as(
        &t,
        json!({ "content": "bot one remembers the deploy key rotation" }),
        Some(&bot),
    )
    .await;
    assert_eq!(
        get_as(&t, &format!("/api/memory/{mine}"), &adm).await.body["agent"],
        "bot-1"
    );
    let r = post_as(
        &t,
        "/api/memory/remember",
        json!({ "content": "pretending to be bot two", "agent": "bot-2" }),
        &bot,
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let theirs = remember_as(
        &t,
        json!({ "content": "bot two private note", "agent": "bot-2" }),
        Some(&adm),
    )
    .await;
    assert_out_of_scope(
        &get_as(&t, &format!("/api/memory/{theirs}"), &bot).await,
        "agent scope GET",
    );
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{theirs}?reason=test"),
        None,
        Some(&bot),
        &[],
    )
    .await;
    assert_out_of_scope(&r, "agent scope DELETE");
    let r = get_as(&t, "/api/memories?limit=1000", &bot).await;
    assert_eq!(ids_of(&r.body, "memories"), BTreeSet::from([mine.clone()]));

    let u1_note = remember_as(
        &t,
        json!({ "content": "user one likes dark mode" }),
        Some(&u1),
    )
    .await;
    assert_eq!(
        get_as(&t, &format!("/api/memory/{u1_note}"), &adm)
            .await
            .body["user"],
        "u1"
    );
    let r = post_as(
        &t,
        "/api/memory/remember",
        json!({ "content": "user two setting", "user": "u2" }),
        &u1,
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let u2_note = remember_as(
        &t,
        json!({ "content": "user two likes light mode", "user": "u2" }),
        Some(&adm),
    )
    .await;
    assert_out_of_scope(
        &get_as(&t, &format!("/api/memory/{u2_note}"), &u1).await,
        "user scope GET",
    );
    let r = request(
        &t,
        "PATCH",
        &format!("/api/memory/{u2_note}"),
        Some(json!({ "importance": 0.1, "reason": "x" })),
        Some(&u1),
        &[],
    )
    .await;
    assert_out_of_scope(&r, "user scope PATCH");
    let r = post_as(&t, "/api/memory/recall", json!({ "query": "mode" }), &u1).await;
    assert_eq!(
        ids_of(&r.body, "results"),
        BTreeSet::from([u1_note.clone()])
    );

    // Several fields: all must match.
    let both_note = remember_as(
        &t,
        json!({ "content": "alpha and u1 shared fact" }),
        Some(&both),
    )
    .await;
    let g = get_as(&t, &format!("/api/memory/{both_note}"), &adm).await;
    assert_eq!(
        (g.body["project"].clone(), g.body["user"].clone()),
        (json!("alpha"), json!("u1"))
    );
    let other_user = remember_as(
        &t,
        json!({ "content": "alpha but another user", "project": "alpha", "user": "u2" }),
        Some(&adm),
    )
    .await;
    assert_out_of_scope(
        &get_as(&t, &format!("/api/memory/{other_user}"), &both).await,
        "project+user scope",
    );
    // u1's earlier note has user u1 but no project: outside alpha+u1.
    assert_out_of_scope(
        &get_as(&t, &format!("/api/memory/{u1_note}"), &both).await,
        "project+user scope, no project",
    );
    let r = get_as(&t, "/api/memories?limit=1000", &both).await;
    assert_eq!(ids_of(&r.body, "memories"), BTreeSet::from([both_note]));
    t.stop().await;
}

#[tokio::test]
async fn a_scoped_write_never_hands_back_a_record_outside_the_scope() {
    let t = spawn_with(team).await;
    let adm = admin(&t);
    let alpha = token(&t, Role::Agent, "alpha-agent", project("alpha"));
    let beta = remember_as(
        &t,
        json!({ "content": "beta quarterly numbers are confidential",
                "project": "beta", "sourceType": "import", "sourceId": "beta-doc-1" }),
        Some(&adm),
    )
    .await;
    let mine = remember_as(
        &t,
        json!({ "content": "alpha roadmap draft" }),
        Some(&alpha),
    )
    .await;
    // Every check runs; the failures are reported together.
    let mut leaks: Vec<String> = Vec::new();

    // Same source as a beta record, different content: the beta record
    // (its content, its id) must not come back.
    let r = post_as(
        &t,
        "/api/memory/remember",
        json!({ "content": "alpha guess", "sourceType": "import", "sourceId": "beta-doc-1" }),
        &alpha,
    )
    .await;
    let text = r.body.to_string();
    if text.contains("confidential") || text.contains(beta.as_str()) {
        leaks.push(format!(
            "remember with a beta record's sourceType/sourceId returns it: {} {text}",
            r.status
        ));
    }

    // Same content as a beta record: the beta record must not come back.
    let r = post_as(
        &t,
        "/api/memory/remember",
        json!({ "content": "beta quarterly numbers are confidential" }),
        &alpha,
    )
    .await;
    if r.body.to_string().contains(beta.as_str()) {
        leaks.push(format!(
            "remember of a beta record's content returns the beta record: {} {}",
            r.status, r.body
        ));
    }

    // A PATCH of an own record to a beta record's content must not name
    // the beta record.
    let r = request(
        &t,
        "PATCH",
        &format!("/api/memory/{mine}"),
        Some(json!({ "content": "beta quarterly numbers are confidential", "reason": "probe" })),
        Some(&alpha),
        &[],
    )
    .await;
    if r.body.to_string().contains(beta.as_str()) {
        leaks.push(format!(
            "PATCH to a beta record's content names the beta record: {} {}",
            r.status, r.body
        ));
    }
    assert!(leaks.is_empty(), "scope leaks:\n{}", leaks.join("\n"));
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 3. token defects
// ---------------------------------------------------------------------------

#[tokio::test]
async fn each_token_defect_is_401_with_its_reason_and_a_token_without_jti_is_valid() {
    let t = spawn_with(team).await;
    let secret = secret_of(&t);
    let good = token(&t, Role::Agent, "defects", Scope::default());
    let (payload, sig) = good.split_once('.').expect("two parts");
    let n = now();

    // Tampered payload: the same claims with the role raised to admin.
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    claims["role"] = json!("admin");
    let raised = URL_SAFE_NO_PAD.encode(claims.to_string());
    // Tampered signature: change its first character (keeps the base64 valid).
    let first = if sig.starts_with('A') { "B" } else { "A" };
    let bad_sig = format!("{payload}.{first}{}", &sig[1..]);
    let other_secret = [7u8; 32];
    let other = signet::auth::token::sign(
        &Claims {
            sub: "defects".into(),
            role: Role::Admin,
            scope: Scope::default(),
            iat: n,
            exp: n + 600,
            jti: None,
        },
        &other_secret,
    );
    let expired = forge(
        json!({ "sub": "old", "role": "agent", "scope": {}, "iat": n - 7200, "exp": n - 3600, "jti": "e" })
            .to_string()
            .as_bytes(),
        &secret,
    );
    let expires_now = forge(
        json!({ "sub": "edge", "role": "agent", "scope": {}, "iat": n - 10, "exp": n - 1 })
            .to_string()
            .as_bytes(),
        &secret,
    );
    let future = forge(
        json!({ "sub": "early", "role": "agent", "scope": {}, "iat": n + 3600, "exp": n + 7200 })
            .to_string()
            .as_bytes(),
        &secret,
    );
    let not_json = forge(b"this is not json", &secret);
    let missing_ts = forge(
        json!({ "sub": "a", "role": "agent", "scope": {} })
            .to_string()
            .as_bytes(),
        &secret,
    );
    let missing_exp = forge(
        json!({ "sub": "a", "role": "agent", "scope": {}, "iat": n })
            .to_string()
            .as_bytes(),
        &secret,
    );

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "tampered payload",
            format!("{raised}.{sig}"),
            "invalid signature",
        ),
        ("tampered signature", bad_sig, "invalid signature"),
        ("signed with another secret", other, "invalid signature"),
        ("expired", expired, "token expired"),
        ("expired a second ago", expires_now, "token expired"),
        ("iat far in the future", future, "token not yet valid"),
        (
            "truncated to one part",
            payload.to_string(),
            "malformed token",
        ),
        ("three parts", format!("{good}.{sig}"), "malformed token"),
        (
            "two dots, empty third part",
            format!("{good}."),
            "malformed token",
        ),
        ("empty signature", format!("{payload}."), "malformed token"),
        (
            "non-JSON payload, correctly signed",
            not_json,
            "malformed payload",
        ),
        ("missing iat and exp", missing_ts, "missing timestamps"),
        ("missing exp", missing_exp, "missing timestamps"),
    ];
    for (name, tok, reason) in &cases {
        for path in ["/api/auth/whoami", "/api/memories"] {
            let r = get_as(&t, path, tok).await;
            assert_unauthorized(&r, reason, &format!("{name} on {path}"));
        }
        let r = post_as(
            &t,
            "/api/memory/remember",
            json!({ "content": format!("via {name}") }),
            tok,
        )
        .await;
        assert_unauthorized(&r, reason, &format!("{name} on remember"));
    }

    // The untampered token works, and so does one without jti (other
    // Signet tooling mints those).
    let r = whoami(&t, &good).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let legacy = forge(
        json!({ "sub": "legacy-bot", "role": "agent", "scope": {}, "iat": n, "exp": n + 600 })
            .to_string()
            .as_bytes(),
        &secret,
    );
    let r = whoami(&t, &legacy).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["authenticated"], true);
    assert_eq!(r.body["claims"]["sub"], "legacy-bot");
    assert!(
        r.body["claims"].get("jti").is_none_or(Value::is_null),
        "{:?}",
        r.body
    );
    let id = remember_as(
        &t,
        json!({ "content": "written with a jti-less token" }),
        Some(&legacy),
    )
    .await;
    assert_eq!(
        get_as(&t, &format!("/api/memory/{id}"), &legacy)
            .await
            .status,
        200
    );

    // A non-bearer scheme is no token at all.
    let r = request(
        &t,
        "GET",
        "/api/memories",
        None,
        None,
        &[("authorization", &format!("Basic {good}"))],
    )
    .await;
    assert_unauthorized(
        &r,
        "unsupported authorization scheme 'Basic'; send Authorization: Bearer <token>",
        "basic scheme",
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 4. hybrid locality
// ---------------------------------------------------------------------------

const NO_TOKEN: &str = "authentication required";

#[tokio::test]
async fn hybrid_treats_a_loopback_peer_as_local_admin_unless_it_sends_forwarding_headers() {
    let t = spawn_with(hybrid).await;

    // Loopback without a token: local, admin (it can mint).
    let r = request(&t, "GET", "/api/auth/whoami", None, None, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({ "authenticated": false, "claims": null, "mode": "hybrid",
                "role": "admin", "permissions": ["remember", "recall", "modify", "forget", "recover", "documents", "connectors", "diagnostics", "analytics", "admin"] })
    );
    let r = request(
        &t,
        "POST",
        "/api/auth/token",
        Some(json!({ "role": "agent", "sub": "from-local" })),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "the local admin can mint: {:?}", r.body);
    let minted = r.body["token"].as_str().expect("token").to_string();
    let r = request(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "written by the local admin" })),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A foreign `Host` (a DNS-rebinding page) is refused before auth.
    let r = request(
        &t,
        "GET",
        "/api/auth/whoami",
        None,
        None,
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);

    // Any forwarding header from an untrusted (even loopback) peer voids
    // the bypass.
    let forwarded: [(&str, &str); 7] = [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-for", REMOTE),
        ("forwarded", "for=127.0.0.1"),
        ("forwarded", "for=203.0.113.7;proto=https"),
        ("x-real-ip", "127.0.0.1"),
        ("x-forwarded-host", "localhost"),
        ("x-forwarded-proto", "https"),
    ];
    for (k, v) in forwarded {
        let ctx = format!("{k}: {v}");
        let r = request(&t, "GET", "/api/auth/whoami", None, None, &[(k, v)]).await;
        assert_unauthorized(&r, NO_TOKEN, &ctx);
        let r = request(
            &t,
            "POST",
            "/api/auth/token",
            Some(json!({ "role": "admin" })),
            None,
            &[(k, v)],
        )
        .await;
        assert_unauthorized(&r, NO_TOKEN, &ctx);
        let r = request(
            &t,
            "POST",
            "/api/memory/remember",
            Some(json!({ "content": format!("forwarded write {k}") })),
            None,
            &[(k, v), ("host", "localhost")],
        )
        .await;
        assert_unauthorized(&r, NO_TOKEN, &ctx);
        // With a valid token the same request is fine.
        let r = request(
            &t,
            "GET",
            "/api/auth/whoami",
            None,
            Some(&minted),
            &[(k, v)],
        )
        .await;
        assert_eq!(r.status, 200, "{ctx}: {:?}", r.body);
        assert_eq!(r.body["claims"]["sub"], "from-local", "{ctx}");
    }

    // A token sent by a local caller is still verified and used.
    let n = now();
    let expired = forge(
        json!({ "sub": "x", "role": "admin", "iat": n - 100, "exp": n - 50 })
            .to_string()
            .as_bytes(),
        &secret_of(&t),
    );
    let r = request(&t, "GET", "/api/auth/whoami", None, Some(&expired), &[]).await;
    assert_unauthorized(&r, "token expired", "expired token from loopback");
    let r = request(&t, "GET", "/api/auth/whoami", None, Some("garbage"), &[]).await;
    assert_unauthorized(&r, "malformed token", "garbage token from loopback");
    let ro = token(&t, Role::Readonly, "local-reader", Scope::default());
    let r = request(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "readonly from loopback" })),
        Some(&ro),
        &[],
    )
    .await;
    assert_lacks(&r, "readonly", "remember", "readonly token from loopback");
    t.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_decides_locality() {
    let t = spawn_with(hybrid_behind_proxy).await;
    let agent = token(&t, Role::Agent, "proxied-agent", Scope::default());

    // A public client behind the proxy needs a token...
    let r = request(
        &t,
        "GET",
        "/api/auth/whoami",
        None,
        None,
        &[("x-forwarded-for", REMOTE)],
    )
    .await;
    assert_unauthorized(&r, NO_TOKEN, "public client, no token");
    let r = request(
        &t,
        "POST",
        "/api/auth/token",
        Some(json!({ "role": "admin" })),
        None,
        &[("x-forwarded-for", REMOTE)],
    )
    .await;
    assert_unauthorized(&r, NO_TOKEN, "public client minting");
    // ...and with one it is served as the token says.
    let r = request(
        &t,
        "GET",
        "/api/auth/whoami",
        None,
        Some(&agent),
        &[("x-forwarded-for", REMOTE)],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["authenticated"], true);
    assert_eq!(r.body["claims"]["sub"], "proxied-agent");
    let r = request(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "proxied agent note" })),
        Some(&agent),
        &[("x-forwarded-for", REMOTE)],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A loopback client forwarded by the trusted proxy is local.
    let r = request(
        &t,
        "GET",
        "/api/auth/whoami",
        None,
        None,
        &[("x-forwarded-for", "127.0.0.1")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["authenticated"], false);
    let r = request(
        &t,
        "POST",
        "/api/auth/token",
        Some(json!({ "role": "readonly", "sub": "via-proxy" })),
        None,
        &[("x-forwarded-for", "127.0.0.1")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The proxy itself, forwarding nothing, is local too.
    let r = request(&t, "GET", "/api/auth/whoami", None, None, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // The right-most untrusted hop wins: a spoofed left-most 127.0.0.1 does
    // not help, and a trusted hop after the client is skipped.
    for chain in [
        "127.0.0.1, 203.0.113.7",
        "203.0.113.7, 127.0.0.1",
        "127.0.0.1, 203.0.113.7, 127.0.0.2",
        "not-an-address",
    ] {
        let r = request(
            &t,
            "GET",
            "/api/auth/whoami",
            None,
            None,
            &[("x-forwarded-for", chain)],
        )
        .await;
        assert_unauthorized(&r, NO_TOKEN, &format!("chain {chain}"));
    }
    // `Host` does not turn a remote client into a local one.
    let r = request(
        &t,
        "GET",
        "/api/memories",
        None,
        None,
        &[("x-forwarded-for", REMOTE), ("host", "localhost")],
    )
    .await;
    assert_unauthorized(&r, NO_TOKEN, "remote client with Host: localhost");
    t.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_naming_a_remote_client_in_forwarded_or_x_real_ip_does_not_make_it_local() {
    // nginx's common `proxy_set_header X-Real-IP $remote_addr;` (or an RFC
    // 7239 `Forwarded` header) without X-Forwarded-For names a remote
    // client: it must not get the local admin bypass.
    let t = spawn_with(hybrid_behind_proxy).await;
    let mut bypassed: Vec<String> = Vec::new();
    for (k, v) in [("x-real-ip", REMOTE), ("forwarded", "for=203.0.113.7")] {
        let w = request(&t, "GET", "/api/auth/whoami", None, None, &[(k, v)]).await;
        let m = request(
            &t,
            "POST",
            "/api/auth/token",
            Some(json!({ "role": "admin", "sub": "escalated" })),
            None,
            &[(k, v)],
        )
        .await;
        for (what, r) in [("whoami", &w), ("mint an admin token", &m)] {
            let ok = r.status == 401
                && r.body == json!({ "error": NO_TOKEN })
                && header(r, "www-authenticate") == Some("Bearer");
            if !ok {
                bypassed.push(format!(
                    "{what} with only {k}: {v} -> {} {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(
        bypassed.is_empty(),
        "remote clients got the local bypass:\n{}",
        bypassed.join("\n")
    );
    t.stop().await;
}

#[tokio::test]
async fn team_mode_ignores_host_and_loopback_and_always_wants_a_token() {
    let t = spawn_with(team).await;
    for headers in [
        vec![],
        vec![("host", "localhost")],
        vec![("host", "127.0.0.1")],
        vec![("x-forwarded-for", "127.0.0.1")],
    ] {
        let r = request(&t, "GET", "/api/auth/whoami", None, None, &headers).await;
        assert_unauthorized(&r, NO_TOKEN, &format!("team {headers:?}"));
    }
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 5. minting, whoami and status
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_mints_working_tokens_with_the_requested_sub_role_scope_and_ttl() {
    let t = spawn_with(team).await;
    let adm = admin(&t);
    let before = now();
    let r = post_as(
        &t,
        "/api/auth/token",
        json!({ "role": "agent", "sub": "minted-bot", "scope": { "project": "m" }, "ttlSeconds": 600 }),
        &adm,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let minted = r.body["token"].as_str().expect("token").to_string();
    assert_eq!(minted.split('.').count(), 2, "two parts: {minted}");
    assert!(!minted.contains('='), "unpadded: {minted}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(r.body["expiresAt"].as_str().expect("expiresAt"))
            .expect("expiresAt is RFC 3339")
            .timestamp();
    assert!(
        (before + 600..=now() + 600).contains(&expires),
        "expiresAt {expires} vs now {before}"
    );

    let w = whoami(&t, &minted).await;
    assert_eq!(w.status, 200, "{:?}", w.body);
    assert_eq!(w.body["authenticated"], true);
    assert_eq!(w.body["mode"], "team");
    let c = &w.body["claims"];
    assert_eq!(c["sub"], "minted-bot");
    assert_eq!(c["role"], "agent");
    assert_eq!(c["scope"], json!({ "project": "m" }));
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        600
    );
    assert_eq!(c["exp"].as_i64(), Some(expires));
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c:?}");
    assert_eq!(r.body["jti"], c["jti"]);
    // It acts as its claims say: scoped agent writes land in project m.
    let id = remember_as(&t, json!({ "content": "minted bot note" }), Some(&minted)).await;
    assert_eq!(
        get_as(&t, &format!("/api/memory/{id}"), &adm).await.body["project"],
        "m"
    );
    let h = get_as(&t, &format!("/api/memory/{id}/history"), &adm).await;
    assert_eq!(
        h.body["history"][0]["changedBy"], "minted-bot",
        "{:?}",
        h.body
    );

    // Without sub and ttlSeconds: a generated sub, the default lifetime.
    let r = post_as(&t, "/api/auth/token", json!({ "role": "readonly" }), &adm).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let w = whoami(&t, r.body["token"].as_str().expect("token")).await;
    let c = &w.body["claims"];
    assert!(c["sub"].as_str().is_some_and(|s| !s.is_empty()), "{c:?}");
    assert_eq!(c["role"], "readonly");
    assert_eq!(c["scope"], json!({}));
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        604_800
    );

    // Refusals.
    for (body, what) in [
        (json!({ "role": "king" }), "unknown role"),
        (json!({ "role": "ADMIN" }), "role is case-sensitive"),
        (json!({}), "missing role"),
        (json!({ "role": "agent", "ttlSeconds": 0 }), "zero ttl"),
        (
            json!({ "role": "agent", "ttlSeconds": -60 }),
            "negative ttl",
        ),
        (
            json!({ "role": "agent", "ttlSeconds": "soon" }),
            "ttl of the wrong type",
        ),
    ] {
        let r = post_as(&t, "/api/auth/token", body, &adm).await;
        assert_eq!(r.status, 400, "{what}: {:?}", r.body);
        assert!(
            r.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}"
        );
    }
    let r = post_as(&t, "/api/auth/token", json!({ "role": "king" }), &adm).await;
    assert!(
        r.body["error"].as_str().expect("error").contains("role"),
        "{:?}",
        r.body
    );
    t.stop().await;
}

#[tokio::test]
async fn local_mode_mints_nothing_and_whoami_says_unauthenticated() {
    let t = spawn_app().await;
    let r = t
        .post("/api/auth/token", json!({ "role": "agent", "sub": "x" }))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.body["error"].as_str().expect("error").contains("local"),
        "{:?}",
        r.body
    );
    let r = t.get("/api/auth/whoami").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({ "authenticated": false, "claims": null, "mode": "local",
                "role": "admin", "permissions": ["remember", "recall", "modify", "forget", "recover", "documents", "connectors", "diagnostics", "analytics", "admin"] })
    );
    let r = t.get("/api/auth/status").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["mode"], "local");
    let r = t.post("/api/auth/revoke", json!({ "sub": "x" })).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        !signet::auth::secret::path(&t.workspace).exists(),
        "local mode creates no secret"
    );
    t.stop().await;
}

#[tokio::test]
async fn auth_status_reports_the_mode_and_never_the_secret() {
    let t = spawn_with(team).await;
    let secret = secret_of(&t);
    assert_eq!(secret.len(), 32);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(signet::auth::secret::path(&t.workspace))
            .expect("secret file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "secret file mode");
    }
    let forms = [
        hex::encode(&secret),
        hex::encode_upper(&secret),
        STANDARD.encode(&secret),
        STANDARD_NO_PAD.encode(&secret),
        URL_SAFE.encode(&secret),
        URL_SAFE_NO_PAD.encode(&secret),
        serde_json::to_string(&secret).expect("json"),
    ];
    for role in Role::ALL {
        let r = get_as(
            &t,
            "/api/auth/status",
            &token(&t, role, "status-reader", Scope::default()),
        )
        .await;
        assert_eq!(r.status, 200, "{role:?}: {:?}", r.body);
        assert_eq!(r.body["mode"], "team");
        let text = r.body.to_string();
        for f in &forms {
            assert!(
                !text.contains(f.as_str()),
                "status leaks the secret as {f}: {text}"
            );
        }
        let w = whoami(&t, &token(&t, role, "status-reader", Scope::default())).await;
        let text = w.body.to_string();
        for f in &forms {
            assert!(
                !text.contains(f.as_str()),
                "whoami leaks the secret: {text}"
            );
        }
    }
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 6. revocation
// ---------------------------------------------------------------------------

fn claims(sub: &str, role: Role, iat: i64, jti: Option<&str>) -> Claims {
    Claims {
        sub: sub.into(),
        role,
        scope: Scope::default(),
        iat,
        exp: iat + 3600,
        jti: jti.map(str::to_string),
    }
}

#[tokio::test]
async fn revoked_tokens_are_refused_at_once_and_after_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = spawn_in(dir.path().to_path_buf(), team).await;
    let adm = admin(&t);
    let n = now();
    let alice1 = sign(&t, &claims("alice", Role::Agent, n - 10, Some("alice-1")));
    let alice2 = sign(&t, &claims("alice", Role::Agent, n - 10, Some("alice-2")));
    let bob_old = sign(&t, &claims("bob", Role::Agent, n - 10, None));
    let bob_old_jti = sign(&t, &claims("bob", Role::Operator, n - 5, Some("bob-1")));
    let carol = sign(
        &t,
        &claims("carol", Role::Readonly, n - 10, Some("carol-1")),
    );
    for tok in [&alice1, &alice2, &bob_old, &bob_old_jti, &carol] {
        assert_eq!(whoami(&t, tok).await.status, 200);
    }

    // By jti: that token only, at once.
    let r = post_as(&t, "/api/auth/revoke", json!({ "jti": "alice-1" }), &adm).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["revoked"], true);
    assert_eq!(r.body["jti"], "alice-1");
    assert_unauthorized(
        &whoami(&t, &alice1).await,
        "token revoked",
        "alice-1 after revoke",
    );
    let r = post_as(
        &t,
        "/api/memory/remember",
        json!({ "content": "by a revoked token" }),
        &alice1,
    )
    .await;
    assert_unauthorized(&r, "token revoked", "alice-1 writing");
    assert_eq!(
        whoami(&t, &alice2).await.status,
        200,
        "the other alice token still works"
    );

    // By sub: every earlier token of that subject, with or without jti.
    let r = post_as(&t, "/api/auth/revoke", json!({ "sub": "bob" }), &adm).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["sub"], "bob");
    assert_unauthorized(
        &whoami(&t, &bob_old).await,
        "token revoked",
        "bob without jti",
    );
    assert_unauthorized(
        &whoami(&t, &bob_old_jti).await,
        "token revoked",
        "bob with jti",
    );
    // A bob token issued after the revocation is valid.
    let bob_new = sign(&t, &claims("bob", Role::Agent, now() + 2, Some("bob-2")));
    assert_eq!(whoami(&t, &bob_new).await.status, 200);
    assert_eq!(whoami(&t, &carol).await.status, 200);

    // Bodies with neither or both, or blank values: 400.
    for body in [
        json!({}),
        json!({ "jti": "x", "sub": "y" }),
        json!({ "jti": "" }),
        json!({ "sub": "  " }),
    ] {
        let r = post_as(&t, "/api/auth/revoke", body.clone(), &adm).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Non-admins cannot revoke.
    let r = post_as(&t, "/api/auth/revoke", json!({ "sub": "alice" }), &carol).await;
    assert_lacks(&r, "readonly", "admin", "readonly revoking");
    assert_eq!(whoami(&t, &alice2).await.status, 200);

    // After a restart over the same workspace the revocations still hold.
    t.stop().await;
    let t = spawn_in(dir.path().to_path_buf(), team).await;
    assert_unauthorized(
        &whoami(&t, &alice1).await,
        "token revoked",
        "alice-1 after restart",
    );
    assert_unauthorized(
        &whoami(&t, &bob_old).await,
        "token revoked",
        "bob after restart",
    );
    assert_unauthorized(
        &whoami(&t, &bob_old_jti).await,
        "token revoked",
        "bob-1 after restart",
    );
    assert_eq!(
        whoami(&t, &alice2).await.status,
        200,
        "alice-2 survives the restart"
    );
    assert_eq!(
        whoami(&t, &bob_new).await.status,
        200,
        "later bob token survives"
    );
    assert_eq!(
        whoami(&t, &adm).await.status,
        200,
        "same secret after restart"
    );
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 7. rate limits
// ---------------------------------------------------------------------------

/// `n` records created by `tok`.
async fn records(t: &TestApp, tok: &str, n: usize, label: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            remember_as(
                t,
                json!({ "content": format!("{label} record number {i}") }),
                Some(tok),
            )
            .await,
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_deletes_against_a_limit_of_ten_succeed_exactly_ten_times() {
    let t = spawn_with(|cfg| {
        team(cfg);
        cfg.settings.auth.rate_limits.forget = limit(10);
    })
    .await;
    let adm = admin(&t);
    let ids = records(&t, &adm, 20, "parallel").await;
    let deleter = token(&t, Role::Agent, "deleter", Scope::default());

    let mut tasks = Vec::new();
    for id in ids.clone() {
        let (client, url, tok) = (
            t.client.clone(),
            t.url(&format!("/api/memory/{id}?reason=test")),
            deleter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .delete(url)
                .bearer_auth(tok)
                .send()
                .await
                .expect("send");
            (id, into_resp(r).await)
        }));
    }
    let mut ok = Vec::new();
    let mut limited = Vec::new();
    for task in tasks {
        let (id, r) = task.await.expect("task");
        match r.status {
            200 => {
                assert_eq!(r.body["status"], "deleted", "{:?}", r.body);
                ok.push(id);
            }
            429 => {
                assert_rate_limited(&r, "parallel delete");
                limited.push(id);
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!((ok.len(), limited.len()), (10, 10));
    for id in &ok {
        assert_eq!(
            get_as(&t, &format!("/api/memory/{id}"), &adm).await.status,
            404
        );
    }
    for id in &limited {
        assert_eq!(
            get_as(&t, &format!("/api/memory/{id}"), &adm).await.status,
            200,
            "a refused delete deleted"
        );
    }

    // The actor is the token's sub, never a header.
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{}?reason=test", limited[0]),
        None,
        Some(&deleter),
        &[("x-signet-actor", "someone-fresh")],
    )
    .await;
    assert_rate_limited(&r, "deleter with a spoofed actor header");
    // A second token of the same sub shares the window.
    let same_sub = token(&t, Role::Operator, "deleter", Scope::default());
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{}?reason=test", limited[0]),
        None,
        Some(&same_sub),
        &[],
    )
    .await;
    assert_rate_limited(&r, "another token of the same sub");
    // Other actors are not affected.
    let other = token(&t, Role::Agent, "other-deleter", Scope::default());
    for id in &limited[..3] {
        delete_as(&t, id, &other).await;
    }
    // Reads are never limited.
    for _ in 0..15 {
        assert_eq!(get_as(&t, "/api/memories", &deleter).await.status, 200);
    }
    t.stop().await;
}

#[tokio::test]
async fn a_forced_delete_counts_against_both_the_forget_and_the_force_delete_limit() {
    let t = spawn_with(|cfg| {
        team(cfg);
        cfg.settings.auth.rate_limits.forget = limit(4);
        cfg.settings.auth.rate_limits.force_delete = limit(2);
    })
    .await;
    let adm = admin(&t);
    let ids = records(&t, &adm, 6, "force").await;
    let op = token(&t, Role::Operator, "forcer", Scope::default());
    let force = |id: &str| format!("/api/memory/{id}?force=true&reason=cleanup");
    for id in &ids[..2] {
        let r = request(&t, "DELETE", &force(id), None, Some(&op), &[]).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = request(&t, "DELETE", &force(&ids[2]), None, Some(&op), &[]).await;
    assert_rate_limited(&r, "third forced delete");
    assert_eq!(
        get_as(&t, &format!("/api/memory/{}", ids[2]), &adm)
            .await
            .status,
        200
    );
    // The refused forced delete used no forget: two plain deletes remain
    // (2 forced + 2 plain = the forget limit of 4), then 429.
    for id in &ids[2..4] {
        delete_as(&t, id, &op).await;
    }
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{}?reason=test", ids[4]),
        None,
        Some(&op),
        &[],
    )
    .await;
    assert_rate_limited(&r, "fifth delete over the forget limit");
    t.stop().await;
}

#[tokio::test]
async fn batch_forget_is_limited_by_the_batch_forget_limit() {
    let t = spawn_with(|cfg| {
        team(cfg);
        cfg.settings.auth.rate_limits.batch_forget = limit(2);
    })
    .await;
    let adm = admin(&t);
    let ids = records(&t, &adm, 4, "batch").await;
    let agent = token(&t, Role::Agent, "batcher", Scope::default());
    for id in &ids[..2] {
        let r = post_as(
            &t,
            "/api/memory/forget",
            json!({ "ids": [id], "mode": "execute", "reason": "cleanup" }),
            &agent,
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["deleted"], 1, "{:?}", r.body);
    }
    let r = post_as(
        &t,
        "/api/memory/forget",
        json!({ "ids": [ids[2]], "mode": "execute", "reason": "cleanup" }),
        &agent,
    )
    .await;
    assert_rate_limited(&r, "third batch forget (limit 2)");
    assert_eq!(
        get_as(&t, &format!("/api/memory/{}", ids[2]), &adm)
            .await
            .status,
        200,
        "a rate-limited batch forget must not delete"
    );
    let other = token(&t, Role::Agent, "other-batcher", Scope::default());
    let r = post_as(
        &t,
        "/api/memory/forget",
        json!({ "ids": [ids[3]], "mode": "execute", "reason": "cleanup" }),
        &other,
    )
    .await;
    assert_eq!(r.status, 200, "other actors are unaffected: {:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn patches_are_limited_by_the_modify_limit() {
    let t = spawn_with(|cfg| {
        team(cfg);
        cfg.settings.auth.rate_limits.modify = limit(2);
    })
    .await;
    let adm = admin(&t);
    let ids = records(&t, &adm, 3, "modify").await;
    let agent = token(&t, Role::Agent, "patcher", Scope::default());
    let patch = |id: &str, i: f64| {
        let path = format!("/api/memory/{id}");
        let tok = agent.clone();
        let t = &t;
        async move {
            request(
                t,
                "PATCH",
                &path,
                Some(json!({ "importance": i, "reason": "tune" })),
                Some(&tok),
                &[],
            )
            .await
        }
    };
    assert_eq!(patch(&ids[0], 0.1).await.status, 200);
    assert_eq!(patch(&ids[1], 0.2).await.status, 200);
    let r = patch(&ids[2], 0.3).await;
    assert_rate_limited(&r, "third PATCH (modify limit 2)");
    assert_eq!(
        get_as(&t, &format!("/api/memory/{}", ids[2]), &adm)
            .await
            .body["version"],
        1
    );
    t.stop().await;
}

#[tokio::test]
async fn minting_and_revoking_share_the_admin_limit() {
    let t = spawn_with(|cfg| {
        team(cfg);
        cfg.settings.auth.rate_limits.admin = limit(3);
    })
    .await;
    let adm = admin(&t);
    for _ in 0..2 {
        let r = post_as(&t, "/api/auth/token", json!({ "role": "readonly" }), &adm).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = post_as(&t, "/api/auth/revoke", json!({ "jti": "nothing" }), &adm).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = post_as(&t, "/api/auth/token", json!({ "role": "readonly" }), &adm).await;
    assert_rate_limited(&r, "fourth admin operation");
    let r = post_as(&t, "/api/auth/revoke", json!({ "sub": "someone" }), &adm).await;
    assert_rate_limited(&r, "fifth admin operation");
    let other = token(&t, Role::Admin, "second-admin", Scope::default());
    let r = post_as(&t, "/api/auth/token", json!({ "role": "readonly" }), &other).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.stop().await;
}

#[tokio::test]
async fn local_mode_has_no_rate_limits() {
    let t = spawn_with(|cfg| {
        cfg.settings.auth.rate_limits.forget = limit(2);
        cfg.settings.auth.rate_limits.force_delete = limit(1);
        cfg.settings.auth.rate_limits.batch_forget = limit(1);
        cfg.settings.auth.rate_limits.modify = limit(1);
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..14 {
        ids.push(t.remember(&format!("local unlimited record {i}")).await);
    }
    for id in &ids[..4] {
        let r = t
            .send(
                "PATCH",
                &format!("/api/memory/{id}"),
                json!({ "importance": 0.5, "reason": "r" }),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    for (i, id) in ids[..10].iter().enumerate() {
        let path = if i % 2 == 0 {
            format!("/api/memory/{id}?force=true&reason=test")
        } else {
            format!("/api/memory/{id}?reason=test")
        };
        let r = t.raw("DELETE", &path, None).await;
        assert_eq!(r.status, 200, "delete {i}: {:?}", r.body);
    }
    for id in &ids[10..] {
        let r = t
            .post(
                "/api/memory/forget",
                json!({ "ids": [id], "mode": "execute", "reason": "r" }),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["deleted"], 1);
    }
    t.stop().await;
}

#[tokio::test]
async fn token_less_local_callers_in_hybrid_mode_are_limited_per_actor_header() {
    let t = spawn_with(|cfg| {
        hybrid(cfg);
        cfg.settings.auth.rate_limits.forget = limit(2);
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(t.remember(&format!("hybrid limited record {i}")).await);
    }
    let del = |id: &str, actor: Option<&'static str>| {
        let path = format!("/api/memory/{id}?reason=test");
        let t = &t;
        async move {
            let headers: Vec<(&str, &str)> = actor
                .map(|a| vec![("x-signet-actor", a)])
                .unwrap_or_default();
            request(t, "DELETE", &path, None, None, &headers).await
        }
    };
    assert_eq!(del(&ids[0], Some("h1")).await.status, 200);
    assert_eq!(del(&ids[1], Some("h1")).await.status, 200);
    assert_rate_limited(&del(&ids[2], Some("h1")).await, "h1 over its limit");
    assert_eq!(
        del(&ids[2], Some("h2")).await.status,
        200,
        "h2 has its own window"
    );
    assert_eq!(del(&ids[3], None).await.status, 200);
    assert_eq!(del(&ids[4], None).await.status, 200);
    assert_rate_limited(&del(&ids[5], None).await, "anonymous over its limit");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 8. audit
// ---------------------------------------------------------------------------

#[tokio::test]
async fn with_a_token_the_audit_trail_names_the_tokens_sub_whatever_the_body_or_headers_claim() {
    let t = spawn_with(team).await;
    let adm = admin(&t);
    let agent = token(&t, Role::Agent, "auditor", Scope::default());
    let spoof = [("x-signet-actor", "spoofed")];
    let r = request(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "audited record", "who": "someone-else" })),
        Some(&agent),
        &spoof,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = request(
        &t,
        "PATCH",
        &format!("/api/memory/{id}"),
        Some(json!({ "content": "audited record, edited", "reason": "edit", "changed_by": "someone-else" })),
        Some(&agent),
        &spoof,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = request(
        &t,
        "POST",
        "/api/memory/modify",
        Some(json!({ "patches": [{ "id": id, "importance": 0.2, "changed_by": "item-claim" }], "reason": "tune", "changed_by": "batch-claim" })),
        Some(&agent),
        &spoof,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["updated"], 1, "{:?}", r.body);
    let r = request(
        &t,
        "DELETE",
        &format!("/api/memory/{id}?reason=test"),
        Some(json!({ "reason": "gone", "changed_by": "someone-else" })),
        Some(&agent),
        &spoof,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = request(
        &t,
        "POST",
        &format!("/api/memory/{id}/recover"),
        Some(json!({ "reason": "back", "changed_by": "someone-else" })),
        Some(&agent),
        &spoof,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let h = get_as(&t, &format!("/api/memory/{id}/history"), &adm).await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    let events: Vec<(String, String)> = h.body["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_string(),
                e["changedBy"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events[1].0, "updated");
    for (event, by) in &events {
        assert_eq!(by, "auditor", "{event} was attributed to {by}: {events:?}");
    }
    let g = get_as(&t, &format!("/api/memory/{id}"), &adm).await;
    assert_eq!(g.body["updated_by"], "auditor", "{:?}", g.body);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 9. the token CLI
// ---------------------------------------------------------------------------

fn signet_cli(workspace: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .env("SIGNET_OFFLINE", "1")
        .args(args)
        .env("SIGNET_PATH", workspace)
        .env("SIGNET_LOG", "warn")
        .output()
        .expect("run signet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signet_token_create_mints_a_token_the_running_team_server_accepts() {
    let t = spawn_with(team).await;
    let ws = t.workspace.clone();
    let out = tokio::task::spawn_blocking(move || {
        signet_cli(
            &ws,
            &[
                "token",
                "create",
                "--role",
                "agent",
                "--sub",
                "cli-bot",
                "--scope",
                "project=p",
                "--ttl",
                "1h",
            ],
        )
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert_eq!(printed.lines().count(), 1, "exactly the token: {printed:?}");

    let w = whoami(&t, &printed).await;
    assert_eq!(w.status, 200, "{:?}", w.body);
    assert_eq!(w.body["authenticated"], true);
    assert_eq!(w.body["claims"]["sub"], "cli-bot");
    assert_eq!(w.body["claims"]["role"], "agent");
    assert_eq!(w.body["claims"]["scope"], json!({ "project": "p" }));
    let c = &w.body["claims"];
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        3600
    );
    let id = remember_as(
        &t,
        json!({ "content": "written with a CLI token" }),
        Some(&printed),
    )
    .await;
    assert_eq!(
        get_as(&t, &format!("/api/memory/{id}"), &admin(&t))
            .await
            .body["project"],
        "p"
    );

    let ws = t.workspace.clone();
    let tok = printed.clone();
    let (inspect, king, tampered) = tokio::task::spawn_blocking(move || {
        let (p, s) = tok.split_once('.').expect("two parts");
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json");
        claims["role"] = json!("admin");
        let forged = format!("{}.{s}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        (
            signet_cli(&ws, &["token", "inspect", &tok]),
            signet_cli(&ws, &["token", "create", "--role", "king"]),
            signet_cli(&ws, &["token", "inspect", &forged]),
        )
    })
    .await
    .expect("join");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: Value = serde_json::from_slice(&inspect.stdout).expect("inspect prints JSON");
    assert_eq!(info["verification"], "valid", "{info}");
    assert_eq!(info["claims"]["sub"], "cli-bot");
    assert_eq!(info["claims"]["scope"]["project"], "p");

    assert!(!king.status.success(), "--role king must fail");
    assert!(king.stdout.is_empty(), "no token printed for a bad role");
    assert!(
        String::from_utf8_lossy(&king.stderr).contains("role"),
        "{}",
        String::from_utf8_lossy(&king.stderr)
    );

    let forged: Value = serde_json::from_slice(&tampered.stdout).expect("inspect prints JSON");
    assert_eq!(forged["verification"], "invalid signature", "{forged}");
    t.stop().await;
}

// ---------------------------------------------------------------------------
// 10. startup refusals
// ---------------------------------------------------------------------------

async fn start_error(workspace: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> String {
    let mut cfg = Config::for_workspace(workspace);
    tweak(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    match signet::app::App::start(cfg, listener, std::future::pending()).await {
        Ok(_) => panic!("the daemon must refuse to start"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn team_mode_refuses_to_start_with_a_wrong_size_or_unreadable_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join(".daemon")).expect("dir");
    std::fs::write(signet::auth::secret::path(dir.path()), b"short").expect("write");
    let err = start_error(dir.path(), team).await;
    assert!(err.contains("expected 32"), "{err}");
    assert!(err.contains("auth-secret"), "names the file: {err}");
    assert_eq!(
        std::fs::read(signet::auth::secret::path(dir.path())).expect("read"),
        b"short",
        "the bad secret is left alone"
    );
    let err = start_error(dir.path(), hybrid).await;
    assert!(err.contains("expected 32"), "hybrid too: {err}");

    // A secret path that cannot be read as a file.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(signet::auth::secret::path(dir.path())).expect("dir as secret");
    let err = start_error(dir.path(), team).await;
    assert!(err.contains("cannot read"), "{err}");
}

#[tokio::test]
async fn local_mode_on_a_non_loopback_bind_refuses_to_start_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = start_error(dir.path(), |cfg| cfg.bind = "0.0.0.0".into()).await;
    assert!(err.contains("auth.mode"), "{err}");
}
