//! Bulk import (admin only): lines parsed by a front (the HTTP route, the
//! CLI), checked here, inserted by the store writer in batches of
//! [`BATCH`] (one group commit each). See [`crate::store::transfer`] for
//! the line format and what is kept.

use serde::Serialize;

use super::{Caller, MemoryError, MemoryService, Operation};
use crate::actors::store_writer::WriteOp;
use crate::store::transfer::{Line, Outcome, Ready, VectorTarget};

/// Lines per writer batch.
pub const BATCH: usize = 1000;
/// Refused lines listed in a report (the count covers all of them).
const MAX_ERRORS: usize = 100;

/// A refused line.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LineError {
    /// 1-based line number in the input.
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub error: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Lines read (blank ones not counted).
    pub lines: u64,
    pub imported: u64,
    /// Live duplicates of a live memory (same content or source in the
    /// same partition), skipped like a remember's duplicate.
    pub duplicates: u64,
    /// Ids already present, skipped.
    pub existing: u64,
    /// Given vectors stored as they were.
    pub vectors: u64,
    /// Memories queued for embedding (no usable vector given).
    pub queued: u64,
    pub refused: u64,
    /// The first refused lines and why.
    pub errors: Vec<LineError>,
}

impl ImportReport {
    fn refuse(&mut self, line: u64, id: Option<String>, error: String) {
        self.refused += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(LineError { line, id, error });
        }
    }
}

impl MemoryService {
    /// Admit one import request: admin, counted once against the admin
    /// rate limit, refused while mutations are frozen.
    pub async fn admit_import(&self, caller: &Caller) -> Result<(), MemoryError> {
        self.admit(caller, Operation::Import).await?;
        self.check_writable()
    }

    /// Import a batch of lines (each with its line number, or the reason
    /// it could not be read) and add the results to `report`. The request
    /// was admitted by [`MemoryService::admit_import`]; the permission and
    /// the kill switch are checked again for every batch.
    pub async fn import_batch(
        &self,
        caller: &Caller,
        lines: Vec<(u64, Result<Line, String>)>,
        report: &mut ImportReport,
    ) -> Result<(), MemoryError> {
        caller.permit(Operation::Import.permission())?;
        self.check_writable()?;
        let max = self.config.settings.memory.max_content_bytes;
        let mut batch = Vec::with_capacity(lines.len());
        let mut numbers = Vec::with_capacity(lines.len());
        for (n, parsed) in lines {
            report.lines += 1;
            match parsed.and_then(|l| l.validate(max).map(|vector| (l, vector))) {
                Ok((line, vector)) => {
                    numbers.push(n);
                    batch.push(Ready { line, vector });
                }
                Err(e) => report.refuse(n, None, e),
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let e = &self.config.settings.embedding;
        let target = VectorTarget {
            model: (e.provider != "none").then(|| self.embed.model().to_string()),
            dims: self.index.dims(),
            max_attempts: self.config.settings.memory.pipeline_v2.max_attempts,
        };
        let outcomes = self
            .write(|reply| WriteOp::Import {
                batch: batch.clone(),
                target: target.clone(),
                reply,
            })
            .await?;
        for (n, o) in numbers.into_iter().zip(outcomes) {
            match o {
                Outcome::Imported { vector, queued, .. } => {
                    report.imported += 1;
                    report.vectors += u64::from(vector.is_some());
                    report.queued += u64::from(queued);
                }
                Outcome::Exists { .. } => report.existing += 1,
                Outcome::Duplicate { .. } => report.duplicates += 1,
                Outcome::Refused { id, error } => report.refuse(n, id, error),
            }
        }
        Ok(())
    }
}
