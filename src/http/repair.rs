//! Repair routes (admin): `POST /api/repair/<action>` answers
//! `{action, success, affected, message}` and writes an audit history row;
//! `GET /api/repair/embedding-gaps` and `GET /api/repair/dedup-stats`
//! report. Agents (`x-signet-actor-type: agent|pipeline`) are throttled by
//! the ledger's admin limit; operators are not.

use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::{reply, ApiError};
use super::{body, boxed, json, with_state, AppState};
use crate::auth::ledger::RateOp;
use crate::memory::{Caller, MemoryError};
use crate::store::maintenance::{self, RepairAction};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepairBody {
    repair: Option<bool>,
    dry_run: Option<bool>,
    batch_size: Option<i64>,
}

fn is_autonomous(c: &Caller) -> bool {
    matches!(c.actor_type.as_deref(), Some("agent") | Some("pipeline"))
}

async fn run(
    action: String,
    caller: Caller,
    b: RepairBody,
    st: AppState,
) -> Result<Response, ApiError> {
    if is_autonomous(&caller) {
        auth::limit(&st.auth, &st.registry, &caller, &[RateOp::Admin]).await?;
    }
    let dry_run = b.dry_run.unwrap_or(false);
    let act = match action.as_str() {
        "requeue-dead-jobs" | "requeue-dead" => RepairAction::RequeueDeadJobs,
        "release-leases" => RepairAction::ReleaseLeases,
        "check-fts" => RepairAction::CheckFts {
            repair: b.repair.unwrap_or(false),
        },
        "clean-orphans" => RepairAction::CleanOrphans,
        "deduplicate" => RepairAction::Deduplicate { dry_run },
        "re-embed" => {
            let batch = b.batch_size.unwrap_or(100);
            if !(1..=10_000).contains(&batch) {
                return Err(ApiError::BadRequest("batchSize must be 1..10000".into()));
            }
            RepairAction::ReEmbed { batch, dry_run }
        }
        "retention-sweep" => {
            st.memories.writable()?;
            let report = st
                .registry
                .sweep_now(std::time::Duration::from_secs(300))
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
                .map_err(ApiError::Unavailable)?;
            let out = st
                .memories
                .repair(
                    &caller,
                    RepairAction::SweepAudit {
                        tombstones: report.tombstones,
                        history: report.history,
                        completed_jobs: report.completed_jobs,
                        dead_jobs: report.dead_jobs,
                    },
                )
                .await?;
            return Ok(json(&json!({
                "action": "retention-sweep", "success": true, "affected": out.affected,
                "message": out.message, "counts": report,
            })));
        }
        other => return Err(ApiError::NotFound(format!("no repair action '{other}'"))),
    };
    let out = st.memories.repair(&caller, act).await?;
    tracing::info!(action = out.action, affected = out.affected, by = %caller.actor, "repair");
    Ok(json(&out))
}

/// POST /api/repair/:action
pub fn action(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "repair" / String)
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(body::json::<RepairBody>(limit))
            .and(with_state(st))
            .and_then(
                |action: String, caller: Caller, b: RepairBody, st: AppState| async move {
                    Ok::<_, std::convert::Infallible>(
                        run(action, caller, b, st)
                            .await
                            .unwrap_or_else(|e| e.to_response()),
                    )
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
            .and_then(|which: String, _caller: Caller, st: AppState| async move {
                let out = match which.as_str() {
                    "embedding-gaps" => {
                        st.memories
                            .reads()
                            .read(|c| maintenance::embedding_gaps(c, 100))
                            .await
                    }
                    "dedup-stats" => st.memories.reads().read(maintenance::dedup_stats).await,
                    other => {
                        return Ok::<_, std::convert::Infallible>(
                            ApiError::NotFound(format!("no repair report '{other}'")).to_response(),
                        )
                    }
                };
                reply(out.map_err(MemoryError::from))
            }),
    )
}
