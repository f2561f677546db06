//! Bulk import (admin only): lines parsed by a front (the HTTP route, the
//! CLI), checked here, inserted by the store writer in batches of
//! [`BATCH`] (one group commit each). See [`crate::store::transfer`] for
//! the line format and what is kept.

use serde::Serialize;

use super::{Caller, MemoryError, MemoryService, Operation};
use crate::actors::store_writer::WriteOp;
use crate::store::transfer::{Line, Outcome, Ready, VectorTarget};

/// Lines per writer batch: one group commit each, and what other writers
/// wait behind at most (~0.1 s).
pub const BATCH: usize = 2000;
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
    /// Add another batch's figures.
    pub fn merge(&mut self, part: ImportReport) {
        self.lines += part.lines;
        self.imported += part.imported;
        self.duplicates += part.duplicates;
        self.existing += part.existing;
        self.vectors += part.vectors;
        self.queued += part.queued;
        self.refused += part.refused;
        let room = MAX_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(part.errors.into_iter().take(room));
    }

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

/// An import in progress: each batch is written while the front reads and
/// parses the next (two cores: one parses, one writes).
pub struct Importer {
    memories: MemoryService,
    caller: Caller,
    in_flight: Option<tokio::task::JoinHandle<Result<ImportReport, MemoryError>>>,
    report: ImportReport,
}

impl Importer {
    /// Admit the import (see [`MemoryService::admit_import`]) and start.
    pub async fn start(memories: &MemoryService, caller: &Caller) -> Result<Importer, MemoryError> {
        memories.admit_import(caller).await?;
        Ok(Importer {
            memories: memories.clone(),
            caller: caller.clone(),
            in_flight: None,
            report: ImportReport::default(),
        })
    }

    /// Hand over a batch; waits for the previous one first.
    pub async fn push(
        &mut self,
        lines: Vec<(u64, Result<Line, String>)>,
    ) -> Result<(), MemoryError> {
        self.settle().await?;
        let (memories, caller) = (self.memories.clone(), self.caller.clone());
        self.in_flight = Some(tokio::spawn(async move {
            let mut part = ImportReport::default();
            memories.import_batch(&caller, lines, &mut part).await?;
            Ok(part)
        }));
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), MemoryError> {
        if let Some(h) = self.in_flight.take() {
            let part = h
                .await
                .map_err(|e| MemoryError::Unavailable(format!("an import batch failed: {e}")))??;
            self.report.merge(part);
        }
        Ok(())
    }

    /// What was imported before this point (written batches only).
    pub fn imported(&self) -> u64 {
        self.report.imported
    }

    /// Wait for the last batch; the whole report.
    pub async fn finish(mut self) -> Result<ImportReport, MemoryError> {
        self.settle().await?;
        Ok(self.report)
    }
}
