//! Black-box tests of server-sent events (SPEC §10, issue 5 point 1): a real
//! daemon on a real port, real HTTP clients reading `GET /sse` and
//! `GET /api/events` as a byte stream, parsed by the small SSE client of
//! `helpers::sse`.
//! Covered: the lifecycle events and their order, `Last-Event-ID` resumes
//! (header and query), the bounded ring, `?types=` and `?project=`, token
//! scopes in team mode, publish-after-commit (refused writes publish
//! nothing), keepalive comments, gzip-encoded streams, opt-in
//! `pipeline.status` snapshots, dropping a lagging client, and that 200
//! idle subscribers plus one that never reads do not stall remember.
//!
//! Every read has a timeout, so no test can hang on a silent stream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signet::auth::Role;
use signet::store::Scope;

use crate::helpers::sse::{
    head_of, open_sse, sse_request, subscribe, summary, Next, SseClient, SseEvent, READ,
};
use crate::helpers::{
    call, delete_q, delete_q_as, into_resp, patch, patch_as, project, recover, remember_as,
    remember_content, spawn_app, spawn_in, spawn_with, team, token, Resp, TestApp, HEAVY,
    UNKNOWN_ID,
};

// ---------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------

// The throughput test takes `HEAVY` exclusively so that its measurements are
// not disturbed by the other tests, whose daemons take it shared (the tests
// of this module also take it themselves, as they did when it was this
// binary's own lock).

/// The query string of every delete of this module.
const REASON: &str = "reason=sse-test";

fn expect(list: &[(u64, &str, &str)]) -> Vec<(u64, String, String)> {
    list.iter()
        .map(|(i, k, m)| (*i, k.to_string(), m.to_string()))
        .collect()
}

/// Open `path` asking for gzip; returns the response and its
/// `content-encoding`.
async fn open_gzip(t: &TestApp, path: &str, last: Option<&str>) -> (reqwest::Response, String) {
    let req = sse_request(t, path, None, last).header("accept-encoding", "br, gzip;q=0.8");
    let resp = head_of(req, path).await;
    assert_eq!(resp.status().as_u16(), 200);
    let enc = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let vary = resp
        .headers()
        .get("vary")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(vary.contains("accept-encoding"), "vary: {vary:?}");
    (resp, enc)
}

fn ok(r: &Resp, status: &str, ctx: &str) {
    assert_eq!(r.status, 200, "{ctx}: {:?}", r.body);
    assert_eq!(r.body["status"], status, "{ctx}: {:?}", r.body);
}

/// Close `clients`, then stop the daemon (bounded: a hang fails the test).
async fn shutdown<const N: usize>(t: TestApp, clients: [SseClient; N]) {
    drop(clients);
    let start = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(30), t.stop()).await;
    assert!(
        stopped.is_ok(),
        "the daemon did not shut down within 30 s of its SSE clients disconnecting"
    );
    let took = start.elapsed();
    if took > Duration::from_secs(2) {
        println!(
            "shutdown in {} took {took:?}",
            std::thread::current().name().unwrap_or("?")
        );
    }
}

// ---------------------------------------------------------------------------
// 1. lifecycle events
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_client_on_sse_and_on_api_events_sees_created_updated_deleted_recovered_in_order_with_increasing_ids(
) {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut sse = subscribe(&t, "/sse", None, None).await;
    let mut api = subscribe(&t, "/api/events", None, None).await;

    let content = "herons nest in the old alder by the mill";
    let id = remember_as(
        &t,
        json!({ "content": content, "tags": "birds,river", "importance": 0.7 }),
        None,
    )
    .await;
    let mut seen: Vec<SseEvent> = Vec::new();
    for c in [&mut sse, &mut api] {
        let e = c.take(1).await.remove(0);
        assert_eq!(e.kind(), "memory.created", "{e:?}");
        assert_eq!(e.memory(), id);
        assert_eq!(e.data["content"], content, "{e:?}");
        assert_eq!(e.data["importance"], 0.7, "{e:?}");
        assert!(e.data["project"].is_null(), "{e:?}");
        assert!(e.data["created_at"].is_string(), "{e:?}");
        assert_eq!(e.id(), 1, "ids start at 1: {e:?}");
        seen.push(e);
    }

    let r = patch(
        &t,
        &id,
        json!({ "content": "herons nest in the new alder by the mill", "reason": "moved" }),
    )
    .await;
    ok(&r, "updated", "patch");
    for c in [&mut sse, &mut api] {
        let e = c.take(1).await.remove(0);
        assert_eq!(e.kind(), "memory.updated", "{e:?}");
        assert_eq!(e.memory(), id);
        assert_eq!(e.data["version"], 2, "{e:?}");
        assert_eq!(e.data["version"], r.body["newVersion"], "{e:?}");
        assert_eq!(e.data["contentChanged"], true, "{e:?}");
        seen.push(e);
    }

    let r = delete_q(&t, &id, REASON).await;
    ok(&r, "deleted", "delete");
    for c in [&mut sse, &mut api] {
        let e = c.take(1).await.remove(0);
        assert_eq!(e.kind(), "memory.deleted", "{e:?}");
        assert_eq!(e.memory(), id);
        assert_eq!(e.data["version"], r.body["newVersion"], "{e:?}");
        seen.push(e);
    }

    let r = recover(&t, &id, json!({ "reason": "sse-test" })).await;
    ok(&r, "recovered", "recover");
    for c in [&mut sse, &mut api] {
        let e = c.take(1).await.remove(0);
        assert_eq!(e.kind(), "memory.recovered", "{e:?}");
        assert_eq!(e.memory(), id);
        assert_eq!(e.data["version"], r.body["newVersion"], "{e:?}");
        seen.push(e);
    }

    // Both paths carry the same numbered sequence, ids strictly increasing.
    let on_sse: Vec<_> = seen.iter().step_by(2).cloned().collect();
    let on_api: Vec<_> = seen.iter().skip(1).step_by(2).cloned().collect();
    let want = expect(&[
        (1, "memory.created", &id),
        (2, "memory.updated", &id),
        (3, "memory.deleted", &id),
        (4, "memory.recovered", &id),
    ]);
    assert_eq!(summary(&on_sse), want);
    assert_eq!(summary(&on_api), want);
    for w in on_sse.windows(2) {
        assert!(w[0].id() < w[1].id(), "{:?}", summary(&on_sse));
        assert!(
            w[0].data["version"].as_i64() < w[1].data["version"].as_i64()
                || w[0].kind() == "memory.created",
            "versions grow: {:?}",
            on_sse
        );
    }
    sse.assert_quiet("/sse after the lifecycle").await;
    api.assert_quiet("/api/events after the lifecycle").await;
    shutdown(t, [sse, api]).await;
}

#[tokio::test]
async fn an_idle_stream_gets_a_keepalive_comment_within_fifteen_seconds_and_keeps_delivering() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut c = subscribe(&t, "/sse", None, None).await;
    let start = Instant::now();
    let comment = c.first_comment(Duration::from_secs(25)).await;
    let waited = start.elapsed();
    assert_eq!(comment.as_deref(), Some("keepalive"), "after {waited:?}");
    assert!(
        waited <= Duration::from_secs(17),
        "keepalive came after {waited:?}"
    );
    assert!(c.queue.is_empty(), "no event was expected: {:?}", c.queue);
    let id = remember_content(&t, "still alive after a keepalive", None).await;
    let e = c.take(1).await.remove(0);
    assert_eq!((e.id(), e.kind(), e.memory()), (1, "memory.created", &*id));
    shutdown(t, [c]).await;
}

#[tokio::test]
async fn graceful_shutdown_ends_open_streams_instead_of_waiting_for_them_forever() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut c = subscribe(&t, "/sse", None, None).await;
    let id = remember_content(&t, "a note before the shutdown", None).await;
    assert_eq!(c.take(1).await[0].memory(), id);
    // SPEC §12: stop accepting, finish in-flight requests, drain, checkpoint.
    // An event stream never finishes by itself, so shutdown must end it.
    let start = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(10), t.stop()).await;
    assert!(
        stopped.is_ok(),
        "shutdown did not complete within 10 s while an SSE client was connected"
    );
    println!(
        "shutdown with a connected SSE client took {:?}",
        start.elapsed()
    );
    match c.next(READ).await {
        Next::End | Next::Failed(_) => {}
        other => panic!("the stream outlived the daemon: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 2. Last-Event-ID
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reconnecting_with_last_event_id_gets_exactly_the_missed_events_then_live_ones() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut first = subscribe(&t, "/sse", None, None).await;
    let a = remember_content(&t, "alpha note for resume", None).await;
    let b = remember_content(&t, "bravo note for resume", None).await;
    let c = remember_content(&t, "charlie note for resume", None).await;
    let got = first.take(3).await;
    assert_eq!(
        summary(&got),
        expect(&[
            (1, "memory.created", &a),
            (2, "memory.created", &b),
            (3, "memory.created", &c),
        ])
    );
    let last = got[2].id();
    drop(first);

    // While disconnected.
    let d = remember_content(&t, "delta note written while away", None).await;
    ok(
        &patch(
            &t,
            &a,
            json!({ "content": "alpha note, revised", "reason": "r" }),
        )
        .await,
        "updated",
        "patch",
    );
    ok(&delete_q(&t, &b, REASON).await, "deleted", "delete");

    let mut back = subscribe(&t, "/sse", None, Some(&last.to_string())).await;
    let missed = back.take(3).await;
    assert_eq!(
        summary(&missed),
        expect(&[
            (4, "memory.created", &d),
            (5, "memory.updated", &a),
            (6, "memory.deleted", &b),
        ])
    );
    back.assert_quiet("nothing beyond the missed events").await;

    // Then live events follow, without duplicates of the replay.
    let e = remember_content(&t, "echo note after the resume", None).await;
    let live = back.take(1).await;
    assert_eq!(summary(&live), expect(&[(7, "memory.created", &e)]));
    back.assert_quiet("after the live event").await;

    // The query-string form (for EventSource polyfills) and the alias path.
    let mut q = subscribe(&t, "/api/events?lastEventId=5", None, None).await;
    assert_eq!(
        summary(&q.take(2).await),
        expect(&[(6, "memory.deleted", &b), (7, "memory.created", &e)])
    );
    q.assert_quiet("query lastEventId").await;

    // Resuming from the newest id replays nothing but still gets live ones.
    let mut newest = subscribe(&t, "/sse", None, Some("7")).await;
    newest.assert_quiet("resume from the newest id").await;
    let f = remember_content(&t, "foxtrot note", None).await;
    assert_eq!(
        summary(&newest.take(1).await),
        expect(&[(8, "memory.created", &f)])
    );
    // A client without Last-Event-ID gets no replay at all.
    let mut fresh = subscribe(&t, "/sse", None, None).await;
    fresh.assert_quiet("no Last-Event-ID, no replay").await;
    shutdown(t, [back, q, newest, fresh]).await;
}

#[tokio::test]
async fn a_malformed_last_event_id_is_a_400_json_error() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    for (path, last) in [
        ("/sse", Some("not-a-number")),
        ("/sse", Some("-3")),
        ("/api/events?lastEventId=abc", None),
    ] {
        let r = into_resp(open_sse(&t, path, None, last).await).await;
        assert_eq!(r.status, 400, "{path} {last:?}: {:?}", r.body);
        assert!(r.body["error"].is_string(), "{path} {last:?}: {:?}", r.body);
    }
    shutdown(t, []).await;
}

// ---------------------------------------------------------------------------
// 7. the ring bound
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_last_event_id_older_than_the_ring_gets_what_the_ring_holds_and_ids_stay_monotonic() {
    let _g = HEAVY.read().await;
    let t = spawn_with(|c| c.settings.server.sse_ring_size = 5).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(remember_content(&t, &format!("ring note number {i}"), None).await);
    }
    fn created(ids: &[String], from: usize, to: usize) -> Vec<(u64, String, String)> {
        (from..=to)
            .map(|n| (n as u64, "memory.created".to_string(), ids[n - 1].clone()))
            .collect()
    }

    // Ids 1..=10 were published; the ring holds 6..=10.
    let mut old = subscribe(&t, "/sse", None, Some("2")).await;
    assert_eq!(summary(&old.take(5).await), created(&ids, 6, 10));
    old.assert_quiet("only the ring's events").await;

    let eleventh = remember_content(&t, "ring note number 10", None).await;
    ids.push(eleventh);
    assert_eq!(summary(&old.take(1).await), created(&ids, 11, 11));

    let mut zero = subscribe(&t, "/sse", None, Some("0")).await;
    assert_eq!(summary(&zero.take(5).await), created(&ids, 7, 11));
    zero.assert_quiet("ring from 0").await;

    let mut inside = subscribe(&t, "/sse", None, Some("9")).await;
    assert_eq!(summary(&inside.take(2).await), created(&ids, 10, 11));
    inside.assert_quiet("ring from 9").await;

    // Live ids continue after the ring's, on every client.
    ids.push(remember_content(&t, "ring note number 11", None).await);
    for c in [&mut old, &mut zero, &mut inside] {
        assert_eq!(summary(&c.take(1).await), created(&ids, 12, 12));
    }
    shutdown(t, [old, zero, inside]).await;
}

// ---------------------------------------------------------------------------
// 3. filters
// ---------------------------------------------------------------------------

#[tokio::test]
async fn types_and_project_filters_deliver_only_matching_events() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut all = subscribe(&t, "/sse", None, None).await;
    let mut deletes = subscribe(&t, "/sse?types=memory.deleted", None, None).await;
    let mut two = subscribe(
        &t,
        "/api/events?types=memory.created,memory.recovered",
        None,
        None,
    )
    .await;
    let mut in_a = subscribe(&t, "/sse?project=a", None, None).await;
    let mut a_deletes = subscribe(&t, "/sse?project=a&types=memory.deleted", None, None).await;
    let mut in_c = subscribe(&t, "/sse?project=c", None, None).await;

    let x = remember_as(
        &t,
        json!({ "content": "xylophone lessons in project a", "project": "a" }),
        None,
    )
    .await; // 1
    let y = remember_as(
        &t,
        json!({ "content": "yacht maintenance in project b", "project": "b" }),
        None,
    )
    .await; // 2
    let z = remember_content(&t, "zither tuning with no project", None).await; // 3
    ok(
        &patch(&t, &x, json!({ "importance": 0.9, "reason": "r" })).await,
        "updated",
        "patch x",
    ); // 4
    ok(&delete_q(&t, &y, REASON).await, "deleted", "delete y"); // 5
    ok(&delete_q(&t, &x, REASON).await, "deleted", "delete x"); // 6
    ok(
        &recover(&t, &x, json!({ "reason": "sse-test" })).await,
        "recovered",
        "recover x",
    ); // 7
    let w = remember_as(
        &t,
        json!({ "content": "walrus census in project a", "project": "a" }),
        None,
    )
    .await; // 8
    ok(&delete_q(&t, &z, REASON).await, "deleted", "delete z"); // 9

    assert_eq!(
        summary(&all.take(9).await),
        expect(&[
            (1, "memory.created", &x),
            (2, "memory.created", &y),
            (3, "memory.created", &z),
            (4, "memory.updated", &x),
            (5, "memory.deleted", &y),
            (6, "memory.deleted", &x),
            (7, "memory.recovered", &x),
            (8, "memory.created", &w),
            (9, "memory.deleted", &z),
        ])
    );
    assert_eq!(
        summary(&deletes.drain().await),
        expect(&[
            (5, "memory.deleted", &y),
            (6, "memory.deleted", &x),
            (9, "memory.deleted", &z),
        ])
    );
    assert_eq!(
        summary(&two.drain().await),
        expect(&[
            (1, "memory.created", &x),
            (2, "memory.created", &y),
            (3, "memory.created", &z),
            (7, "memory.recovered", &x),
            (8, "memory.created", &w),
        ])
    );
    let a_events = in_a.drain().await;
    assert_eq!(
        summary(&a_events),
        expect(&[
            (1, "memory.created", &x),
            (4, "memory.updated", &x),
            (6, "memory.deleted", &x),
            (7, "memory.recovered", &x),
            (8, "memory.created", &w),
        ])
    );
    assert!(a_events.iter().all(|e| e.data["project"] == "a"));
    assert_eq!(
        summary(&a_deletes.drain().await),
        expect(&[(6, "memory.deleted", &x)])
    );
    assert!(in_c.drain().await.is_empty());

    // Filters apply to the replay as well.
    let mut replay = subscribe(&t, "/sse?project=b", None, Some("0")).await;
    assert_eq!(
        summary(&replay.drain().await),
        expect(&[(2, "memory.created", &y), (5, "memory.deleted", &y)])
    );
    shutdown(t, [all, deletes, two, in_a, a_deletes, in_c, replay]).await;
}

// ---------------------------------------------------------------------------
// 4. scopes in team mode
// ---------------------------------------------------------------------------

#[tokio::test]
async fn in_team_mode_a_project_scoped_token_sees_only_its_project_an_admin_sees_all_and_no_token_is_401(
) {
    let _g = HEAVY.read().await;
    let t = spawn_with(team).await;
    let adm = token(&t, Role::Admin, "sse-admin", Scope::default());
    let writer_a = token(&t, Role::Agent, "agent-a", project("a"));
    let reader_a = token(&t, Role::Readonly, "reader-a", project("a"));
    let reader = token(&t, Role::Readonly, "reader-all", Scope::default());

    // No token, or a bad one: 401 JSON before any stream starts.
    for path in ["/sse", "/api/events"] {
        let r = into_resp(open_sse(&t, path, None, None).await).await;
        assert_eq!(r.status, 401, "{path}: {:?}", r.body);
        assert!(r.body["error"].is_string(), "{path}: {:?}", r.body);
        let r = into_resp(open_sse(&t, path, Some("garbage.token"), None).await).await;
        assert_eq!(r.status, 401, "{path} bad token: {:?}", r.body);
        assert!(r.body["error"].is_string(), "{path}: {:?}", r.body);
    }

    let mut admin_c = subscribe(&t, "/sse", Some(&adm), None).await;
    let mut scoped = subscribe(&t, "/sse", Some(&reader_a), None).await;
    let mut readonly = subscribe(&t, "/api/events", Some(&reader), None).await;
    // A filter cannot widen a scope: project b through an a-scoped token.
    let mut widened = subscribe(&t, "/sse?project=b", Some(&reader_a), None).await;

    let a1 = remember_as(
        &t,
        json!({ "content": "scoped alpha plan" }),
        Some(&writer_a),
    )
    .await; // 1
    let b1 = remember_as(
        &t,
        json!({ "content": "beta plan by admin", "project": "b" }),
        Some(&adm),
    )
    .await; // 2
    let n1 = remember_as(
        &t,
        json!({ "content": "unprojected admin note" }),
        Some(&adm),
    )
    .await; // 3
    ok(
        &patch_as(
            &t,
            &a1,
            json!({ "content": "scoped alpha plan, v2", "reason": "r" }),
            Some(&writer_a),
        )
        .await,
        "updated",
        "patch a1",
    ); // 4
    ok(
        &delete_q_as(&t, &b1, REASON, Some(&adm)).await,
        "deleted",
        "delete b1",
    ); // 5

    let everything = expect(&[
        (1, "memory.created", &a1),
        (2, "memory.created", &b1),
        (3, "memory.created", &n1),
        (4, "memory.updated", &a1),
        (5, "memory.deleted", &b1),
    ]);
    assert_eq!(summary(&admin_c.take(5).await), everything);
    assert_eq!(summary(&readonly.take(5).await), everything);
    let only_a = expect(&[(1, "memory.created", &a1), (4, "memory.updated", &a1)]);
    assert_eq!(summary(&scoped.drain().await), only_a);
    let w = widened.drain().await;
    assert!(
        w.is_empty(),
        "scope widened by ?project=b: {:?}",
        summary(&w)
    );

    // The replay is scoped too.
    let mut again = subscribe(&t, "/sse", Some(&reader_a), Some("0")).await;
    assert_eq!(summary(&again.drain().await), only_a);
    shutdown(t, [admin_c, scoped, readonly, widened, again]).await;
}

// ---------------------------------------------------------------------------
// 5. publish only after commit
// ---------------------------------------------------------------------------

#[tokio::test]
async fn refused_and_deduplicated_writes_publish_nothing_and_leave_no_gap_in_the_ids() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut c = subscribe(&t, "/sse", None, None).await;

    let a = remember_content(&t, "the kettle is in the left cupboard", None).await; // 1
                                                                                    // Duplicates (exact and normalised) are deduped: no memory.created.
    for dup in [
        "the kettle is in the left cupboard",
        "  The Kettle is in the LEFT cupboard. ",
    ] {
        let r = call(
            &t,
            "POST",
            "/api/memory/remember",
            Some(json!({ "content": dup })),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["deduped"], true, "{:?}", r.body);
        assert_eq!(r.body["id"], a.as_str());
    }
    let b = remember_content(&t, "the teapot is on the top shelf", None).await; // 2

    let refusals = [
        (
            patch(
                &t,
                &a,
                json!({ "content": "kettle moved", "if_version": 99, "reason": "r" }),
            )
            .await,
            409,
            "version_conflict",
        ),
        (
            patch(
                &t,
                &b,
                json!({ "content": "the kettle is in the left cupboard", "reason": "r" }),
            )
            .await,
            409,
            "duplicate_content_hash",
        ),
        (
            patch(
                &t,
                &a,
                json!({ "content": "the kettle is in the left cupboard", "reason": "r" }),
            )
            .await,
            200,
            "no_changes",
        ),
        (delete_q(&t, UNKNOWN_ID, REASON).await, 404, "not_found"),
        (
            recover(&t, &a, json!({ "reason": "sse-test" })).await,
            409,
            "not_deleted",
        ),
    ];
    for (r, status, name) in &refusals {
        assert_eq!(r.status, *status, "{name}: {:?}", r.body);
        assert_eq!(r.body["status"], *name, "{:?}", r.body);
    }
    ok(&delete_q(&t, &a, REASON).await, "deleted", "delete a"); // 3
    let r = delete_q(&t, &a, REASON).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.body["status"], "already_deleted");
    let r = patch(&t, &a, json!({ "content": "ghost edit", "reason": "r" })).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let d = remember_content(&t, "the sugar is next to the kettle", None).await; // 4

    assert_eq!(
        summary(&c.take(4).await),
        expect(&[
            (1, "memory.created", &a),
            (2, "memory.created", &b),
            (3, "memory.deleted", &a),
            (4, "memory.created", &d),
        ])
    );
    c.assert_quiet("no event for refused writes").await;
    shutdown(t, [c]).await;
}

#[tokio::test]
async fn with_mutations_frozen_refused_writes_publish_no_event() {
    let _g = HEAVY.read().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Seed a record with a writable daemon, then reopen the workspace frozen.
    let seed = spawn_in(dir.path().to_path_buf(), |_| {}).await;
    let id = remember_content(&seed, "seeded before the freeze", None).await;
    seed.stop().await;

    let t = spawn_in(dir.path().to_path_buf(), |c| {
        c.settings.memory.pipeline_v2.mutations_frozen = true
    })
    .await;
    let mut c = subscribe(&t, "/sse", None, None).await;
    let r = call(
        &t,
        "POST",
        "/api/memory/remember",
        Some(json!({ "content": "written during the freeze" })),
        None,
    )
    .await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    let r = patch(&t, &id, json!({ "content": "edited", "reason": "r" })).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    let r = delete_q(&t, &id, REASON).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    c.assert_quiet("frozen writes publish nothing").await;
    shutdown(t, [c]).await;
}

// ---------------------------------------------------------------------------
// 6. slow consumers never stall writers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_gzip_client_decodes_the_same_events_and_resumes_and_a_filtered_one_gets_plain_text() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    let mut plain = subscribe(&t, "/sse", None, None).await;
    let (resp, enc) = open_gzip(&t, "/sse", None).await;
    assert_eq!(
        enc, "gzip",
        "an unfiltered client that accepts gzip gets it"
    );
    let mut gz = SseClient::gzip(resp);
    // Filtered streams differ per client and go out as they are.
    let (resp, enc) = open_gzip(&t, "/sse?types=memory.deleted", None).await;
    assert_eq!(enc, "", "a filtered stream is not compressed");
    let mut deleted_only = SseClient::new(resp);

    let a = remember_content(&t, "gzip stream first memory about harbors", None).await;
    let b = remember_content(&t, "gzip stream second memory about maples", None).await;
    ok(&delete_q(&t, &a, REASON).await, "deleted", "delete a");
    let want = expect(&[
        (1, "memory.created", a.as_str()),
        (2, "memory.created", b.as_str()),
        (3, "memory.deleted", a.as_str()),
    ]);
    assert_eq!(summary(&plain.take(3).await), want);
    let got = gz.take(3).await;
    assert_eq!(summary(&got), want);
    assert_eq!(
        got[0].data["content"], "gzip stream first memory about harbors",
        "{:?}",
        got[0]
    );
    assert_eq!(
        summary(&deleted_only.take(1).await),
        expect(&[(3, "memory.deleted", a.as_str())])
    );

    // A gzip resume: the replay is compressed too, then live events follow.
    let (resp, enc) = open_gzip(&t, "/sse", Some("1")).await;
    assert_eq!(enc, "gzip");
    let mut resumed = SseClient::gzip(resp);
    assert_eq!(
        summary(&resumed.take(2).await),
        expect(&[
            (2, "memory.created", b.as_str()),
            (3, "memory.deleted", a.as_str())
        ])
    );
    let c = remember_content(&t, "gzip stream third memory about cedars", None).await;
    let live = expect(&[(4, "memory.created", c.as_str())]);
    assert_eq!(summary(&resumed.take(1).await), live);
    assert_eq!(summary(&gz.take(1).await), live);
    gz.assert_quiet("after the live event").await;
    drop((plain, deleted_only, resumed));
    // Shutdown ends the stream with a proper gzip trailer.
    tokio::time::timeout(Duration::from_secs(10), t.stop())
        .await
        .expect("shutdown in time");
    match gz.next(READ).await {
        Next::End => {}
        other => panic!("a gzip stream must end cleanly at shutdown: {other:?}"),
    }
}

#[tokio::test]
async fn pipeline_status_is_opt_in_comes_without_an_id_first_on_connect_then_on_each_change() {
    let _g = HEAVY.read().await;
    let t = spawn_app().await;
    remember_content(&t, "status stream memory one about lumen", None).await;
    remember_content(&t, "status stream memory two about kelp", None).await;
    let mut both = subscribe(&t, "/sse?types=pipeline.status,memory.created", None, None).await;
    let mut plain = subscribe(&t, "/sse", None, None).await;

    // The current state first, with no id: it is a snapshot, not a logged
    // event, so it never moves a client's Last-Event-ID.
    let first = match both.next(READ).await {
        Next::Event(e) => e,
        other => panic!("no pipeline.status on connect: {other:?}"),
    };
    assert_eq!(first.kind(), "pipeline.status", "{first:?}");
    assert_eq!(first.id, None, "{first:?}");
    assert!(first.data["mode"].is_string(), "{first:?}");
    assert_eq!(first.data["queues"]["memory"]["pending"], 0, "{first:?}");
    assert!(
        first.data["workers"]["embedding"]["provider"].is_string(),
        "{first:?}"
    );

    // Queue two embed jobs: the next comparison sends the changed state.
    let r = t
        .post("/api/repair/re-embed", json!({ "batchSize": 2 }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["affected"], 2, "{:?}", r.body);
    // Each snapshot differs from the one before (other parts, such as the
    // provider's state, may change too); one shows the new queue.
    let mut prev = first.data.clone();
    let changed = loop {
        let e = match both.next(READ).await {
            Next::Event(e) => e,
            other => panic!("no pipeline.status after the queue changed: {other:?}"),
        };
        assert_eq!(e.kind(), "pipeline.status", "{e:?}");
        assert_eq!(e.id, None);
        assert_ne!(
            e.data, prev,
            "a status goes out only when the state changed"
        );
        if e.data["queues"] != first.data["queues"] {
            break e;
        }
        prev = e.data.clone();
    };
    let q = &changed.data["queues"]["memory"];
    let queued: i64 = ["pending", "leased", "completed", "failed", "dead"]
        .iter()
        .map(|k| q[*k].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(queued, 2, "both jobs counted somewhere: {q}");

    // Memory events keep their ids beside the snapshots.
    let c = remember_content(&t, "status stream memory three about onyx", None).await;
    let mut got = Vec::new();
    while got.is_empty() {
        match both.next(READ).await {
            Next::Event(e) if e.kind() == "pipeline.status" => {}
            Next::Event(e) => got.push(e),
            other => panic!("memory.created missing: {other:?}"),
        }
    }
    assert_eq!(summary(&got), expect(&[(3, "memory.created", c.as_str())]));
    // Without the opt-in, no status at all.
    assert_eq!(
        summary(&plain.take(1).await),
        expect(&[(3, "memory.created", c.as_str())])
    );
    plain
        .assert_quiet("a client that did not ask for pipeline.status")
        .await;
    shutdown(t, [both, plain]).await;
}

#[tokio::test]
async fn in_team_mode_pipeline_status_needs_the_diagnostics_permission() {
    let _g = HEAVY.read().await;
    let t = spawn_with(team).await;
    let agent = token(&t, Role::Agent, "agent-a", Scope::default());
    let operator = token(&t, Role::Operator, "op-1", Scope::default());
    let resp = open_sse(&t, "/sse?types=pipeline.status", Some(&agent), None).await;
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.expect("JSON error body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("diagnostics")),
        "{body}"
    );
    // The same agent may still stream memory events.
    let resp = open_sse(&t, "/sse?types=memory.created", Some(&agent), None).await;
    assert_eq!(resp.status().as_u16(), 200);
    drop(resp);
    let resp = open_sse(&t, "/sse?types=pipeline.status", Some(&operator), None).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut c = SseClient::new(resp);
    let e = match c.next(READ).await {
        Next::Event(e) => e,
        other => panic!("no status for an operator: {other:?}"),
    };
    assert_eq!(e.kind(), "pipeline.status");
    shutdown(t, [c]).await;
}

/// `n` remembers through `workers` concurrent tasks; each must succeed.
async fn burst(t: &TestApp, tag: &str, n: usize, workers: usize) -> Duration {
    let url = t.url("/api/memory/remember");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, url, next, tag) =
            (t.client.clone(), url.clone(), next.clone(), tag.to_string());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = json!({ "content": format!("{tag} burst note {i}: otters, kestrels, and weirs") });
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("remember request");
                let r = into_resp(r).await;
                assert_eq!(r.status, 200, "{tag} {i}: {:?}", r.body);
                assert_eq!(r.body["deduped"], false, "{tag} {i}: {:?}", r.body);
            }
        });
    }
    let joined = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(res) = set.join_next().await {
            res.expect("writer task");
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "{tag}: {n} remembers did not finish in 120 s"
    );
    start.elapsed()
}

/// One subscriber that never reads plus 200 idle ones (responses held,
/// never read) on `t`, each on `path` or its alias with the same query.
async fn idle_subscribers(t: &TestApp, query: &str) -> Vec<reqwest::Response> {
    let mut held = Vec::with_capacity(201);
    for i in 0..201 {
        let path = if i % 2 == 0 { "/sse" } else { "/api/events" };
        let r = open_sse(t, &format!("{path}{query}"), None, None).await;
        assert_eq!(r.status(), 200, "idle client {i}");
        held.push(r);
    }
    held
}

/// How many of the first `SAMPLE` of `held` are still connected: read
/// each until it ends or stays quiet; each shows contiguous ids from 1.
const SAMPLE: usize = 20;
async fn still_connected(held: Vec<reqwest::Response>) -> usize {
    let mut connected = 0;
    for resp in held.into_iter().take(SAMPLE) {
        let mut c = SseClient::new(resp);
        let mut last = 0;
        let open = loop {
            match c.next(Duration::from_millis(300)).await {
                Next::Event(e) => {
                    assert_eq!(e.id(), last + 1, "an idle client's ids are contiguous");
                    last = e.id();
                }
                Next::Timeout => break true,
                Next::End | Next::Failed(_) => break false,
            }
        };
        connected += usize::from(open);
    }
    connected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_subscribers_and_one_that_never_reads_do_not_stall_remember() {
    let _g = HEAVY.write().await;
    const N: usize = 500;
    const WORKERS: usize = 16;
    const NAMES: [&str; 4] = [
        "no subscribers",
        "201 subscribers, buffer 256",
        "201 subscribers filtering every event out, buffer 256",
        "201 subscribers, buffer 8",
    ];
    let quiet = spawn_app().await;
    // Default per-client buffer (256): the idle clients stay subscribed
    // through a burst, so their cost is really measured.
    let busy = spawn_app().await;
    // The same, but `?types=` drops every event before it is written.
    let filtered = spawn_app().await;
    // A small buffer (8): group commits of more than 8 events overflow it.
    let small = spawn_with(|c| c.settings.server.sse_client_buffer = 8).await;
    let held_busy = idle_subscribers(&busy, "").await;
    let held_filtered = idle_subscribers(&filtered, "?types=memory.deleted").await;
    let held_small = idle_subscribers(&small, "").await;
    let apps = [&quiet, &busy, &filtered, &small];

    for t in apps {
        burst(t, "warm", 20, WORKERS).await;
    }
    let mut best = [Duration::MAX; 4];
    for round in 0..2 {
        for (k, t) in apps.into_iter().enumerate() {
            let took = burst(t, &format!("round{round}"), N, WORKERS).await;
            println!(
                "round {round}: {N} remembers by {WORKERS} tasks, {}: {:.0}/s ({took:?})",
                NAMES[k],
                N as f64 / took.as_secs_f64()
            );
            assert!(
                took < Duration::from_secs(20),
                "{N} remembers took {took:?} ({})",
                NAMES[k]
            );
            best[k] = best[k].min(took);
        }
    }
    let rate: Vec<f64> = best.iter().map(|d| N as f64 / d.as_secs_f64()).collect();
    for k in 0..4 {
        println!(
            "best of 2, {}: {:.0}/s = {:.0}% of no subscribers",
            NAMES[k],
            rate[k],
            100.0 * rate[k] / rate[0]
        );
    }

    // Every committed remember was published exactly once, in order.
    let total = 20 + 2 * N;
    let mut replay = subscribe(&busy, "/sse", None, Some("0")).await;
    let all = replay.take(total).await;
    for (k, e) in all.iter().enumerate() {
        assert_eq!(e.id(), k as u64 + 1, "ring ids contiguous");
        assert_eq!(e.kind(), "memory.created");
    }
    replay.assert_quiet("nothing beyond the remembers").await;

    println!(
        "sampled idle clients still connected after the bursts: {} of {SAMPLE} (buffer 256), \
         {} of {SAMPLE} (filtered), {} of {SAMPLE} (buffer 8)",
        still_connected(held_busy).await,
        still_connected(held_filtered).await,
        still_connected(held_small).await
    );
    shutdown(quiet, []).await;
    shutdown(busy, [replay]).await;
    shutdown(filtered, []).await;
    shutdown(small, []).await;
    for k in 1..4 {
        assert!(
            rate[k] >= 0.5 * rate[0],
            "remember with {} {:.0}/s < 50% of {:.0}/s without",
            NAMES[k],
            rate[k],
            rate[0]
        );
    }
}

#[tokio::test]
async fn a_client_that_keeps_up_is_not_dropped_when_one_commit_publishes_more_events_than_its_buffer(
) {
    let _g = HEAVY.read().await;
    let t = spawn_with(|c| c.settings.server.sse_client_buffer = 8).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(remember_content(&t, &format!("batch candidate number {i}"), None).await);
    }
    // Subscribed after the remembers and reading continuously: not slow.
    let mut c = subscribe(&t, "/sse", None, None).await;
    let r = t
        .post(
            "/api/memory/forget",
            json!({ "ids": ids, "mode": "execute", "reason": "cleanup" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["deleted"], 20, "{:?}", r.body);
    // One commit publishes 20 events at once (> buffer 8).
    let mut got = Vec::new();
    let end = loop {
        if got.len() == 20 {
            break None;
        }
        match c.next(READ).await {
            Next::Event(e) => got.push(e),
            other => break Some(other),
        }
    };
    assert!(
        end.is_none(),
        "a client that keeps up was dropped after {} of the 20 events of one batch forget: {end:?}",
        got.len()
    );
    let mut deleted: Vec<&str> = got.iter().map(SseEvent::memory).collect();
    deleted.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(deleted, want);
    for (k, e) in got.iter().enumerate() {
        assert_eq!(e.id(), 21 + k as u64);
        assert_eq!(e.kind(), "memory.deleted");
    }
    shutdown(t, [c]).await;
}

#[tokio::test]
async fn a_client_that_falls_more_than_its_buffer_behind_is_disconnected_and_resumes_without_gaps()
{
    let _g = HEAVY.read().await;
    const FLOOD: usize = 64;
    let t = spawn_with(|c| {
        c.settings.server.sse_client_buffer = 8;
        c.settings.memory.max_content_bytes = 512 * 1024;
        // One window per commit, so 64 commits are 64 windows whatever the
        // machine's speed.
        c.settings.server.sse_coalesce_ms = 0;
    })
    .await;
    let mut slow = subscribe(&t, "/sse", None, None).await;

    // ~24 MB of events: far more than the socket buffers on both ends can
    // hold, so the server stops writing to this client and its broadcast
    // buffer (8) overflows. Writers must not notice.
    let filler = "lorem ipsum ".repeat(32 * 1024);
    let start = Instant::now();
    let mut ids = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        ids.push(remember_content(&t, &format!("flood {i}: {filler}"), None).await);
    }
    println!(
        "{FLOOD} remembers of {} KB with a stuck subscriber took {:?}",
        filler.len() / 1024,
        start.elapsed()
    );

    // Reading now drains what was in flight, then the stream ends.
    let mut got = Vec::new();
    let end = loop {
        match slow.next(READ).await {
            Next::Event(e) => got.push(e),
            other => break other,
        }
    };
    assert!(
        matches!(end, Next::End),
        "after {} of {FLOOD} events the stream did not end cleanly: {end:?}",
        got.len()
    );
    assert!(
        got.len() < FLOOD,
        "the client never fell behind: it got all {FLOOD} events"
    );
    for (k, e) in got.iter().enumerate() {
        assert_eq!(e.id(), k as u64 + 1, "delivered ids are contiguous");
        assert_eq!(e.memory(), ids[k]);
    }
    let last = got.last().map(SseEvent::id).unwrap_or(0);
    println!("the stuck client got {last} events before it was dropped");

    // It resumes from the ring (1024 events) without a gap or duplicate.
    let mut back = subscribe(&t, "/sse", None, Some(&last.to_string())).await;
    let missed = back.take(FLOOD - last as usize).await;
    for (k, e) in missed.iter().enumerate() {
        let n = last as usize + k + 1;
        assert_eq!(e.id(), n as u64, "resumed ids are contiguous");
        assert_eq!(e.kind(), "memory.created");
        assert_eq!(e.memory(), ids[n - 1]);
    }
    let after = remember_content(&t, "a small note after the flood", None).await;
    assert_eq!(
        summary(&back.take(1).await),
        expect(&[(FLOOD as u64 + 1, "memory.created", &after)])
    );
    back.assert_quiet("after the resume").await;
    shutdown(t, [slow, back]).await;
}
