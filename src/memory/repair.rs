//! Repair actions and reports (admin): requeue dead jobs, release leases,
//! check the keyword index, clean orphans, deduplicate, re-embed, and a
//! retention sweep on demand. Each action writes an audit history row
//! through the store writer.

use serde::{Deserialize, Serialize};

use super::{Caller, MemoryError, MemoryService, Operation};
use crate::store::maintenance::{self, RepairAction, RepairOutcome};

/// Options of a repair action (`POST /api/repair/:action` body).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairParams {
    pub repair: Option<bool>,
    pub dry_run: Option<bool>,
    pub batch_size: Option<i64>,
}

/// The answer of a repair action.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Repaired {
    Action(RepairOutcome),
    /// A retention sweep: the audit row's outcome plus the sweep's counts.
    Sweep {
        action: &'static str,
        success: bool,
        affected: i64,
        message: String,
        counts: crate::actors::retention::SweepReport,
    },
}

impl MemoryService {
    /// Run the repair action `name`.
    pub async fn run_repair(
        &self,
        caller: &Caller,
        name: &str,
        p: RepairParams,
    ) -> Result<Repaired, MemoryError> {
        self.admit(caller, Operation::Repair).await?;
        let dry_run = p.dry_run.unwrap_or(false);
        let act = match name {
            "requeue-dead-jobs" | "requeue-dead" => RepairAction::RequeueDeadJobs,
            "release-leases" => RepairAction::ReleaseLeases,
            "check-fts" => RepairAction::CheckFts {
                repair: p.repair.unwrap_or(false),
            },
            "clean-orphans" => RepairAction::CleanOrphans,
            "deduplicate" => RepairAction::Deduplicate { dry_run },
            "re-embed" => {
                let batch = p.batch_size.unwrap_or(100);
                if !(1..=10_000).contains(&batch) {
                    return Err(MemoryError::BadRequest("batchSize must be 1..10000".into()));
                }
                RepairAction::ReEmbed { batch, dry_run }
            }
            "retention-sweep" => return self.sweep_now(caller).await,
            other => return Err(MemoryError::NoSuch(format!("no repair action '{other}'"))),
        };
        let out = self.repair(caller, act).await?;
        tracing::info!(action = out.action, affected = out.affected, by = %caller.actor, "repair");
        Ok(Repaired::Action(out))
    }

    /// Ask the retention sweeper to run now, then audit what it purged.
    async fn sweep_now(&self, caller: &Caller) -> Result<Repaired, MemoryError> {
        self.check_writable()?;
        let report = self
            .registry
            .sweep_now(std::time::Duration::from_secs(300))
            .await
            .map_err(|e| MemoryError::Unavailable(e.to_string()))?
            .map_err(MemoryError::Unavailable)?;
        let out = self
            .repair(
                caller,
                RepairAction::SweepAudit {
                    tombstones: report.tombstones,
                    history: report.history,
                    completed_jobs: report.completed_jobs,
                    dead_jobs: report.dead_jobs,
                },
            )
            .await?;
        Ok(Repaired::Sweep {
            action: "retention-sweep",
            success: true,
            affected: out.affected,
            message: out.message,
            counts: report,
        })
    }

    /// A repair report: `embedding-gaps` or `dedup-stats`.
    pub async fn repair_report(
        &self,
        caller: &Caller,
        which: &str,
    ) -> Result<serde_json::Value, MemoryError> {
        caller.permit(Operation::Repair.permission())?;
        let out = match which {
            "embedding-gaps" => {
                self.reads
                    .read(|c| maintenance::embedding_gaps(c, 100))
                    .await?
            }
            "dedup-stats" => self.reads.read(maintenance::dedup_stats).await?,
            other => return Err(MemoryError::NoSuch(format!("no repair report '{other}'"))),
        };
        Ok(out)
    }
}
