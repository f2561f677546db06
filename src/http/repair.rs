//! Repair routes (admin): `POST /api/repair/<action>` answers
//! `{action, success, affected, message}`; `GET /api/repair/embedding-gaps`
//! and `GET /api/repair/dedup-stats` report. The actions, their audit rows
//! and the throttling of autonomous callers are the domain layer's
//! ([`crate::memory::repair`]).

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{body, boxed, with_state, AppState};
use crate::memory::repair::RepairParams;
use crate::memory::Caller;

/// POST /api/repair/:action
pub fn action(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "repair" / String)
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(body::json::<RepairParams>(limit))
            .and(with_state(st))
            .and_then(
                |action: String, caller: Caller, p: RepairParams, st: AppState| async move {
                    reply(st.memories.run_repair(&caller, &action, p).await)
                },
            ),
    )
}

/// GET /api/repair/embedding-gaps and GET /api/repair/dedup-stats
pub fn report(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "repair" / String)
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(with_state(st))
            .and_then(|which: String, caller: Caller, st: AppState| async move {
                reply(st.memories.repair_report(&caller, &which).await)
            }),
    )
}
