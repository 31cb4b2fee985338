//! Folding lines (JSON lines, or CSV rows: see `csv_rows::fold_job`) for the aggregate
//! downstream (see `sources::folding`): the source hands jobs to the parse workers to fold,
//! and sends their tables as one `FoldedTables` at the end of each epoch, or stops folding for good
//! and reads the epoch again record by record.

use super::decode_pool::Work;
use super::FileSource;
use crate::pipeline::spec::Format;
use crate::runtime::message::FoldedTables;
use crate::runtime::stage::{Output, StageResult};
use crate::sources::folding::{Ack, EPOCH_LINES, MAX_FOLDED};
use crate::sources::{ReadStatus, Source};
use std::sync::Arc;

impl FileSource {
    /// `read_lines` while folding (see `folding`): hands jobs to the pool to fold, takes one
    /// job's report per call, and sends the tables when the epoch ends (a full table, the
    /// epoch's line limit, which grows from `FIRST_EPOCH_LINES`, the end of the file;
    /// checkpoints end it through `settle`). Until
    /// then it reports nothing consumed, so nothing moves but the jobs.
    pub(super) fn read_folded(
        &mut self,
        out: &mut Output,
        map: Arc<memmap2::Mmap>,
    ) -> StageResult<(usize, ReadStatus)> {
        let start = self.reader.as_ref().map_or(0, |r| r.start);
        // CSV rows fold with their file's header (`read_csv_pooled` has it by now).
        let layout = match self.s.format {
            Format::Csv | Format::Tsv => match self.csv_layout.clone() {
                Some(l) => Some(l),
                None => {
                    self.stop_folding();
                    return Ok((0, ReadStatus::More));
                }
            },
            _ => None,
        };
        let work = match &layout {
            Some(l) => Work::FoldCsv(l),
            None => Work::Fold,
        };
        self.start_pool();
        let (Some(c), Some(pool)) = (self.folding.as_mut(), self.pool.as_mut()) else {
            return Ok((0, ReadStatus::More));
        };
        if c.bytes == 0 && pool.inflight.is_empty() {
            // A new epoch, which must fit in what may still be folded (see `MAX_FOLDED`;
            // the jobs in flight when an epoch ends can add at most `EPOCH_LINES` again).
            if c.folded + 2 * EPOCH_LINES > MAX_FOLDED {
                self.stop_folding();
                return Ok((0, ReadStatus::More));
            }
            pool.reset(&map, start);
        }
        pool.top_up(work);
        match pool.take_ack() {
            // A CSV job cut inside a row (see `csv_rows`): its rows are folded already.
            Some((at, _)) if !c.continues(start, at) => {
                self.stop_folding();
                Ok((0, ReadStatus::More))
            }
            None => {
                // Everything is folded: the file is done once the tables are out.
                let n = self.settle(out)?;
                if self.folding.is_none() {
                    return Ok((0, ReadStatus::More));
                }
                Ok((n, ReadStatus::Eof))
            }
            Some((_, Ack::Folded(f))) if c.accept(&f) => {
                self.ctx.stats[self.s.node].add_in(f.lines as usize);
                // Every job before this one was taken back already: their pages can go.
                if let Some(r) = self.reader.as_mut() {
                    r.release_to(start + c.bytes);
                }
                pool.top_up(work);
                if f.full || c.lines >= c.epoch_limit {
                    let n = self.settle(out)?;
                    return Ok((n, ReadStatus::More));
                }
                Ok((0, ReadStatus::More))
            }
            Some(_) => {
                self.stop_folding();
                Ok((0, ReadStatus::More))
            }
        }
    }

    /// Stops folding for good: the epoch's tables are dropped and its lines are read again
    /// record by record from the read position, which has not moved since the epoch began.
    pub(super) fn stop_folding(&mut self) {
        // The epoch's lines were counted as they were folded; they count again when read.
        if let Some(c) = self.folding.take() {
            self.ctx.stats[self.s.node]
                .records_in
                .fetch_sub(c.lines, std::sync::atomic::Ordering::Relaxed);
        }
        let restart = self.reader.as_ref().map_or(0, |r| r.start);
        if let Some(pool) = self.pool.as_mut() {
            pool.discard(restart);
        }
    }

    /// Ends the epoch: takes the jobs in flight, sends the workers' tables and moves the read
    /// position past the lines they hold. Returns how many input records that was (none if
    /// a line turned out irregular: then folding stops and the epoch is read again).
    pub(super) fn settle_epoch(&mut self, out: &mut Output) -> StageResult<usize> {
        let (Some(c), Some(pool)) = (self.folding.as_mut(), self.pool.as_mut()) else {
            return Ok(0);
        };
        if c.bytes == 0 && pool.inflight.is_empty() {
            return Ok(0);
        }
        let start = self.reader.as_ref().map_or(0, |r| r.start);
        let mut irregular = false;
        while let Some((at, ack)) = pool.take_ack() {
            match ack {
                Ack::Folded(f) if !irregular && c.continues(start, at) && c.accept(&f) => {
                    self.ctx.stats[self.s.node].add_in(f.lines as usize);
                }
                _ => irregular = true,
            }
        }
        let tables = if irregular { None } else { pool.tables() };
        let Some(tables) = tables else {
            self.stop_folding();
            return Ok(0);
        };
        let (lines, file_lines, bytes, late) = (c.lines, c.file_lines, c.bytes, c.late);
        c.folded += lines;
        c.max_time = c.epoch_max_time;
        c.lines = 0;
        c.file_lines = 0;
        c.bytes = 0;
        c.late = 0;
        c.epoch_limit = (c.epoch_limit * 2).min(EPOCH_LINES);
        let max_time = c.max_time;
        self.advance(file_lines, bytes);
        out.send_folded(FoldedTables {
            records: lines,
            tables,
            late,
            max_time,
        })?;
        Ok(lines as usize)
    }
}
