//! Criterion benches of the request path: normalise+hash, one remember
//! through the store writer actor, a group of 32 concurrent remembers, and
//! keyword recall over 10,000 memories. Runtime, engine and data are built
//! outside `b.iter`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use signet::app::Engine;
use signet::config::Config;
use signet::memory::{Caller, RecallRequest, RememberRequest};
use signet::store::memories::content_hash;

const WORDS: [&str; 16] = [
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
    "kelp", "lumen", "maple", "nectar", "onyx", "prairie",
];

/// The content shape of the load scripts in shared/bench.
fn note(i: u64) -> String {
    format!(
        "bench note 0-{i} about {} near the {} tracking {:x}",
        WORDS[(i % 16) as usize],
        WORDS[((i * 7) % 16) as usize],
        i.wrapping_mul(2654435761) % 4294967296
    )
}

fn remember_req(content: String) -> RememberRequest {
    RememberRequest {
        content: Some(content),
        project: Some("bench".into()),
        ..Default::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn engine(rt: &tokio::runtime::Runtime, dir: &std::path::Path, recall_cache: usize) -> Engine {
    let mut cfg = Config::for_workspace(dir);
    cfg.settings.server.recall_cache_entries = recall_cache;
    cfg.settings.embedding.provider = "none".into();
    rt.block_on(Engine::start(Arc::new(cfg))).expect("engine")
}

fn normalise_hash(c: &mut Criterion) {
    let text = "  Critical: The Deploy pipeline   MUST run migrations before traffic shifts!  ";
    c.bench_function("normalise+hash", |b| {
        b.iter(|| content_hash(std::hint::black_box(text)))
    });
}

fn remember(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    let eng = engine(&rt, dir.path(), 1024);
    let caller = Caller::default();
    let n = AtomicU64::new(0);
    c.bench_function("remember/one via writer (fsync per op)", |b| {
        b.iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            rt.block_on(eng.memories.remember(&caller, remember_req(note(i))))
                .expect("remember")
        })
    });
    let mut g = c.benchmark_group("remember");
    g.throughput(Throughput::Elements(32));
    g.bench_function("32 concurrent via writer (group commit)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..32 {
                    let m = eng.memories.clone();
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    set.spawn(async move {
                        m.remember(&Caller::default(), remember_req(note(i))).await
                    });
                }
                while let Some(r) = set.join_next().await {
                    r.expect("join").expect("remember");
                }
            })
        })
    });
    g.finish();
    rt.block_on(eng.shutdown()).expect("shutdown");
}

fn recall(c: &mut Criterion) {
    recall_with(c, 0, "recall/keyword at 10k (search path, cache off)");
    recall_with(c, 1024, "recall/keyword at 10k (repeated query, cache on)");
}

fn recall_with(c: &mut Criterion, cache: usize, name: &str) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    let eng = engine(&rt, dir.path(), cache);
    rt.block_on(async {
        for chunk in 0..(10_000 / 250) {
            let mut set = tokio::task::JoinSet::new();
            for j in 0..250u64 {
                let m = eng.memories.clone();
                let i = chunk * 250 + j;
                set.spawn(
                    async move { m.remember(&Caller::default(), remember_req(note(i))).await },
                );
            }
            while let Some(r) = set.join_next().await {
                r.expect("join").expect("remember");
            }
        }
    });
    let caller = Caller::default();
    let q = AtomicU64::new(0);
    c.bench_function(name, |b| {
        b.iter(|| {
            let k = q.fetch_add(1, Ordering::Relaxed);
            let query = format!(
                "{} {}",
                WORDS[(k % 16) as usize],
                WORDS[((k * 5) % 16) as usize]
            );
            let req = RecallRequest {
                query,
                limit: Some(10),
                ..Default::default()
            };
            rt.block_on(eng.memories.recall(&caller, req))
                .expect("recall")
        })
    });
    rt.block_on(eng.shutdown()).expect("shutdown");
}

/// The edge's per-request auth work in team mode: verify the bearer token
/// (HMAC, claims, revocation), check the role's permission, build the
/// scoped caller, and count one hit in a rate-limit ledger.
fn auth_check(c: &mut Criterion) {
    use signet::auth::ledger::{RateLedger, RateOp};
    use signet::auth::locality::TrustedProxies;
    use signet::auth::{token, Claims, Permission, Revocations, Role};
    use signet::config::{AuthMode, AuthSettings, RateLimit, RateLimits};
    use signet::http::auth::{caller_of, AuthState};

    let secret = vec![7u8; 32];
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: "bench-agent".into(),
        role: Role::Agent,
        scope: signet::store::Scope {
            project: Some("bench".into()),
            ..Default::default()
        },
        iat: now,
        exp: now + 3600,
        jti: Some("jti-bench".into()),
    };
    let tok = token::sign(&claims, &secret);
    let revocations = Revocations::default();
    revocations.revoke_jti("some-other-token");
    let st = AuthState {
        mode: AuthMode::Team,
        settings: AuthSettings::default(),
        secret: Some(Arc::new(secret)),
        revocations: Arc::new(revocations),
        trusted: TrustedProxies::default(),
    };
    let mut h = warp::http::HeaderMap::new();
    h.insert(
        "authorization",
        format!("Bearer {tok}").parse().expect("header"),
    );
    h.insert("x-signet-request-id", "req-1".parse().expect("header"));
    let peer = Some(std::net::SocketAddr::from(([10, 0, 0, 9], 5000)));
    // A roomy limit so the bench measures counting, not refusals.
    let roomy = RateLimit {
        window_ms: 1,
        max: u32::MAX,
    };
    let mut ledger = RateLedger::new(RateLimits {
        forget: roomy,
        modify: roomy,
        batch_forget: roomy,
        force_delete: roomy,
        admin: roomy,
    });
    let mut t = 0u64;
    c.bench_function("auth/verify+permission+scope+ledger", |b| {
        b.iter(|| {
            let id = st.identify(&h, peer).expect("valid token");
            assert!(id.role.allows(Permission::Forget));
            let caller = caller_of(id, &h);
            t += 2;
            ledger.check(&caller.actor, &[RateOp::Forget], t)
        })
    });
}

/// Recording one request in the telemetry (the cost added to every request).
fn telemetry_record(c: &mut Criterion) {
    let t = signet::telemetry::Telemetry::default();
    let d = std::time::Duration::from_micros(850);
    c.bench_function("telemetry/record one request", |b| {
        b.iter(|| t.record("POST", std::hint::black_box("/api/memory/remember"), 200, d))
    });
    c.bench_function("telemetry/record one request with an id path", |b| {
        b.iter(|| {
            t.record(
                "GET",
                std::hint::black_box("/api/memory/01a202d9-a903-760d-8dc9-dd46f1a042cd"),
                200,
                d,
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = normalise_hash, auth_check, telemetry_record, remember, recall
}
criterion_main!(benches);
