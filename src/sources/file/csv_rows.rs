//! CSV and TSV rows as both readers see them: what a row is once the file's header is known
//! (shared by the sequential reader in `csv` and the decode pool, so both name, check and infer
//! cells alike), the row reader the pool's workers run over a mapped file (rows split here by
//! csv-core's rules, and csv-core, the csv crate's own state machine, for a quote that never
//! closes, reading the mapping in place), and where a job of rows is cut. It is over 800 lines
//! because these three share the row rules and are tested as one against the csv crate.
//!
//! A job can be parsed apart from the bytes before it only if it starts at a record boundary,
//! which a newline inside a quoted field is not. The source cuts each job just after a newline
//! (at first any newline; once that guess was wrong, one that an even count of quotes since the
//! job's start puts outside quotes: see `cut`). That is a guess, not a proof: the job may
//! itself start at a wrong guess, and csv-core reads a quote inside an unquoted field (`5'10"`)
//! as text. The proof comes as the jobs are taken back in
//! order: a worker reads the last row of its job to that row's end, past the cut if need be,
//! and the next job is used only if it starts exactly there (see `FileSource::read_csv_pooled`);
//! otherwise the jobs in flight are dropped and cut again from where the row ended.

use crate::sources::flat_json::Scalar;
use crate::sources::folding::{Ack, FoldSpec, JobFold, Reader, Table};
use crate::sources::formats::infer;
use crate::value::{Map, Str, Value};

/// What a row of a file with a known header is.
pub(super) enum Row {
    /// A line with nothing on it but a CRLF's `\r` (or `""`): skipped, as no record.
    Blank,
    Record(Value),
    /// Bad input: a field that is not UTF-8, or not as many fields as the header.
    Bad(String),
}

/// What `CsvLayout::check` finds a row to be.
enum Checked {
    Blank,
    Bad(String),
    /// A record to build; `ascii`: the whole row is ASCII.
    Record {
        ascii: bool,
    },
}

/// A file's header with what the pipeline wants of its rows.
#[derive(Debug, PartialEq)]
pub(super) struct CsvLayout {
    pub(super) header: Vec<Str>,
    /// Per column: whether the pipeline reads it (`FileSourceSettings::fields`).
    keep: Vec<bool>,
    /// No name twice in the header, so cells are appended without looking their key up.
    unique: bool,
    infer: bool,
    pub(super) delim: u8,
}

impl CsvLayout {
    /// `fields`: the paths of keys the pipeline reads (`None`: all); a column is kept when a
    /// path starts with its name (a cell is never an object, so the rest of a path is for the
    /// expressions to find missing).
    pub(super) fn new(header: &[Str], fields: Option<&[Vec<Str>]>, infer: bool, delim: u8) -> Self {
        let keep = header
            .iter()
            .map(|h| fields.is_none_or(|f| f.iter().any(|p| p.first().is_none_or(|k| k == h))))
            .collect();
        let unique = header
            .iter()
            .enumerate()
            .all(|(i, h)| !header[..i].contains(h));
        CsvLayout {
            header: header.to_vec(),
            keep,
            unique,
            infer,
            delim,
        }
    }

    /// The row of `n` fields: `fields`, which lie back to back in `whole`. Checks in the order
    /// the sequential reader always did: UTF-8 first (naming the first bad field), then a blank
    /// line, then the width.
    pub(super) fn row<'a, I>(&self, fields: I, n: usize, whole: &[u8]) -> Row
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        match self.check(fields.clone(), n, whole) {
            Checked::Blank => Row::Blank,
            Checked::Bad(msg) => Row::Bad(msg),
            Checked::Record { ascii } => {
                let mut m = Map::with_capacity(self.header.len());
                match self.fill(&self.keep, fields, n, ascii, &mut m) {
                    Ok(()) => Row::Record(Value::Object(m)),
                    Err(msg) => Row::Bad(msg),
                }
            }
        }
    }

    /// What a row is, short of building its record.
    fn check<'a, I>(&self, fields: I, n: usize, whole: &[u8]) -> Checked
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        // One look at the whole row settles UTF-8 for every field of an ASCII row.
        let ascii = whole.is_ascii();
        if !ascii {
            if let Err(msg) = check_utf8(fields.clone(), n) {
                return Checked::Bad(msg);
            }
        }
        if n == 1
            && fields
                .clone()
                .next()
                .is_some_and(|c| trim_cr(c, true).is_empty())
        {
            return Checked::Blank;
        }
        if n != self.header.len() {
            return Checked::Bad(format!(
                "the row has {n} fields but the header has {}",
                self.header.len()
            ));
        }
        Checked::Record { ascii }
    }

    /// Adds the cells of a checked row whose column `keep` says to `m`, named by the header.
    fn fill<'a>(
        &self,
        keep: &[bool],
        fields: impl Iterator<Item = &'a [u8]>,
        n: usize,
        ascii: bool,
        m: &mut Map,
    ) -> Result<(), String> {
        for (i, ((k, keep), c)) in self.header.iter().zip(keep).zip(fields).enumerate() {
            if !keep {
                continue;
            }
            let v = self.cell(i, c, n, ascii)?;
            if self.unique {
                m.push_unique(k.clone(), v);
            } else {
                m.insert(k.clone(), v);
            }
        }
        Ok(())
    }

    /// The value of cell `i` (of `n`) of a row, as `fill` puts it in the record.
    #[inline]
    fn cell(&self, i: usize, c: &[u8], n: usize, ascii: bool) -> Result<Value, String> {
        let c = trim_cr(c, i + 1 == n);
        let c = if ascii {
            // SAFETY: the whole row is ASCII, so every part of it is UTF-8 (checking each
            // cell again was a twelfth of a worker's time).
            unsafe { std::str::from_utf8_unchecked(c) }
        } else {
            match std::str::from_utf8(c) {
                Ok(c) => c,
                // Checked already; this only keeps the two checks from drifting.
                Err(_) => return Err(format!("invalid UTF-8 in field {}", i + 1)),
            }
        };
        Ok(if self.infer { infer(c) } else { Value::str(c) })
    }
}

/// A field without the `\r` of a CRLF line end, which only the last field of a row carries
/// (records end at `\n`; see `RowReader`).
#[inline]
pub(super) fn trim_cr(c: &[u8], last: bool) -> &[u8] {
    if last && c.last() == Some(&b'\r') {
        &c[..c.len() - 1]
    } else {
        c
    }
}

/// `Err` naming the first of the `n` fields that is not UTF-8.
fn check_utf8<'a>(fields: impl Iterator<Item = &'a [u8]>, n: usize) -> Result<(), String> {
    for (i, c) in fields.enumerate() {
        if std::str::from_utf8(trim_cr(c, i + 1 == n)).is_err() {
            return Err(format!("invalid UTF-8 in field {}", i + 1));
        }
    }
    Ok(())
}

/// The header row's names (a byte order mark before the first one dropped); `Ok(None)` for a
/// blank line, `Err` naming the first field that is not UTF-8.
pub(super) fn header_of<'a>(
    fields: impl Iterator<Item = &'a [u8]> + Clone,
    n: usize,
) -> Result<Option<Vec<Str>>, String> {
    check_utf8(fields.clone(), n)?;
    if n == 1
        && fields
            .clone()
            .next()
            .is_some_and(|c| trim_cr(c, true).is_empty())
    {
        return Ok(None);
    }
    let mut names = Vec::with_capacity(n);
    for (i, c) in fields.enumerate() {
        let c = std::str::from_utf8(trim_cr(c, i + 1 == n)).unwrap_or_default();
        names.push(Str::new(c.trim_start_matches('\u{feff}')));
    }
    Ok(Some(names))
}

/// A CSV row as text again (quoted where needed), for dead letters.
pub(super) fn csv_text<'a>(fields: impl Iterator<Item = &'a [u8]>, n: usize, delim: u8) -> Vec<u8> {
    let fields: Vec<&[u8]> = fields
        .enumerate()
        .map(|(i, c)| trim_cr(c, i + 1 == n))
        .collect();
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if w.write_record(&fields).is_err() {
        return fields.concat();
    }
    let mut v = w.into_inner().unwrap_or_default();
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    v
}

/// Rows read in place from a byte slice by csv-core, configured as the sequential reader's csv
/// crate reader is: records end at `\n` only (a CRLF's `\r` stays on the last field), quotes
/// doubled inside quoted fields, any number of fields. Each read reports the bytes and
/// newlines it took, which are exactly how far the csv crate's reader would move: blank lines
/// before a row are part of its read, the newline after it too.
pub(super) struct RowReader {
    core: csv_core::Reader,
    pub(super) delim: u8,
    /// The last row: field `i` is `buf[starts[i]..ends[i]]` (back to back when csv-core read
    /// it; the line itself, delimiters and all, when `read` split it).
    buf: Vec<u8>,
    starts: Vec<usize>,
    ends: Vec<usize>,
    len: usize,
    /// Whether csv-core has been given input since `reset`: it drops a byte order mark at the
    /// start of the first input it sees, which must only ever be the file's own (the reader
    /// skips that), never the first bytes of a row where a job, a resumed run or a row after
    /// rows split without it (see `read`) starts.
    primed: bool,
}

impl RowReader {
    pub(super) fn new(delim: u8) -> RowReader {
        RowReader {
            core: csv_core::ReaderBuilder::new()
                .delimiter(delim)
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            delim,
            buf: vec![0; 4096],
            starts: vec![0; 64],
            ends: vec![0; 64],
            len: 0,
            primed: false,
        }
    }

    /// The reader kept in `slot` if it reads `delim`, else a new one put there.
    pub(super) fn reuse(slot: &mut Option<RowReader>, delim: u8) -> &mut RowReader {
        if slot.as_ref().is_none_or(|rr| rr.delim != delim) {
            *slot = None;
        }
        slot.get_or_insert_with(|| RowReader::new(delim))
    }

    /// Starts again at a record boundary.
    pub(super) fn reset(&mut self) {
        self.core.reset();
        self.primed = false;
    }

    /// Reads the row at the start of `input` (which runs to the end of the data): the bytes
    /// and newlines the read took, or `None` when nothing but blank lines is left.
    ///
    /// A row without a quote is split at its delimiters here: csv-core reads such a row the
    /// same way (its only other special byte is the `\n` that ends it, and it skips the `\n`
    /// of blank lines before a row), at about three times the cost (callgrind, 200,000 rows of
    /// six fields, 67 bytes, no quote: 1,040 instructions a row by csv-core's `read_record`,
    /// 370 split here), a third of a worker's instructions on the CSV benchmark.
    /// A row with a quote is read by `split_quoted` (csv-core's rules, field by field), or by
    /// csv-core itself when a quote never closes (the property tests in `csv_tests` hold all
    /// three to the csv crate's reader).
    pub(super) fn read(&mut self, input: &[u8]) -> Option<(usize, u64)> {
        let blank = input
            .iter()
            .position(|&b| b != b'\n')
            .unwrap_or(input.len());
        let rest = &input[blank..];
        if rest.is_empty() {
            return None;
        }
        // The row's end, unless a quote comes first: then csv-core reads it.
        let (line, nl) = match memchr::memchr2(b'\n', b'"', rest) {
            Some(i) if rest[i] == b'"' => {
                // Not empty and not starting with `\n`: csv-core reads a row from it.
                let (n, lines) = match self.split_quoted(rest, i) {
                    Some(read) => read,
                    None => self.read_core(rest)?,
                };
                return Some((blank + n, blank as u64 + lines));
            }
            Some(i) => (i, 1),
            None => (rest.len(), 0),
        };
        self.len = 0;
        let mut start = 0;
        each_byte(&rest[..line], self.delim, |i| {
            self.push(start, i);
            start = i + 1;
        });
        self.push(start, line);
        if self.buf.len() < line {
            self.buf.resize(line.next_power_of_two(), 0);
        }
        self.buf[..line].copy_from_slice(&rest[..line]);
        Some((blank + line + nl, (blank + nl) as u64))
    }

    /// Reads a row whose first quote is at `quote` (`rest` is not empty and does not start
    /// with `\n`) as csv-core does, without its byte-at-a-time state machine: a quarter of the
    /// rows of the CSV and TSV benchmarks hold a quote, and csv-core's `read_record` was a
    /// fifth of a worker's time there. Its rules: a field that starts with a quote is quoted,
    /// and its text runs to the next quote, `""` standing for a quote and a newline being
    /// text; what follows the closing quote up to the delimiter or newline is text, quotes and
    /// all, as is a whole field that does not start with a quote. The fields before the one
    /// the first quote is in hold no quote and no newline, and are split as `read` splits a
    /// row; the fields go back to back into `buf`. `None` when a quote never closes: csv-core
    /// reads that row (to the end of the data).
    fn split_quoted(&mut self, rest: &[u8], quote: usize) -> Option<(usize, u64)> {
        let d = self.delim;
        self.len = 0;
        let mut pos = memchr::memrchr(d, &rest[..quote]).map_or(0, |j| j + 1);
        let mut start = 0;
        each_byte(&rest[..pos], d, |i| {
            self.push(start, i);
            start = i + 1;
        });
        let mut out = 0;
        self.put(&mut out, &rest[..pos]);
        let mut lines = 0;
        loop {
            let start = out;
            if rest.get(pos) == Some(&b'"') {
                pos += 1;
                loop {
                    let close = pos + memchr::memchr(b'"', &rest[pos..])?;
                    let text = &rest[pos..close];
                    lines += newlines(text);
                    self.put(&mut out, text);
                    pos = close + 1;
                    if rest.get(pos) != Some(&b'"') {
                        break;
                    }
                    self.put(&mut out, b"\"");
                    pos += 1;
                }
            }
            // Mostly, a quoted field ends right at the delimiter or the newline.
            let end = match rest.get(pos) {
                Some(&b) if b != d && b != b'\n' => {
                    memchr::memchr2(d, b'\n', &rest[pos..]).map_or(rest.len(), |i| pos + i)
                }
                _ => pos,
            };
            self.put(&mut out, &rest[pos..end]);
            self.push(start, out);
            match rest.get(end) {
                None => return Some((end, lines)),
                Some(b'\n') => return Some((end + 1, lines + 1)),
                Some(_) => pos = end + 1,
            }
        }
    }

    /// Appends `bytes` to `buf` at `*out`.
    #[inline]
    fn put(&mut self, out: &mut usize, bytes: &[u8]) {
        let end = *out + bytes.len();
        if self.buf.len() < end {
            self.buf.resize(end.next_power_of_two(), 0);
        }
        self.buf[*out..end].copy_from_slice(bytes);
        *out = end;
    }

    /// Adds a field of a row `read` splits.
    #[inline]
    fn push(&mut self, start: usize, end: usize) {
        if self.len == self.ends.len() {
            self.grow();
        }
        self.starts[self.len] = start;
        self.ends[self.len] = end;
        self.len += 1;
    }

    #[cold]
    fn grow(&mut self) {
        let n = self.ends.len() * 2;
        self.ends.resize(n, 0);
        self.starts.resize(n, 0);
    }

    /// `read` by csv-core.
    fn read_core(&mut self, input: &[u8]) -> Option<(usize, u64)> {
        use csv_core::ReadRecordResult::*;
        let line0 = self.core.line();
        let (mut nin, mut nout, mut nend) = (0, 0, 0);
        loop {
            let rest = &input[nin..];
            let feed = if self.primed || rest.is_empty() {
                rest
            } else {
                &rest[..1]
            };
            self.primed = true;
            let (res, i, o, e) =
                self.core
                    .read_record(feed, &mut self.buf[nout..], &mut self.ends[nend..]);
            nin += i;
            nout += o;
            nend += e;
            match res {
                InputEmpty => {}
                OutputFull => {
                    let n = self.buf.len() * 2;
                    self.buf.resize(n, 0);
                }
                OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                Record => {
                    self.len = nend;
                    if self.starts.len() < nend {
                        self.starts.resize(self.ends.len(), 0);
                    }
                    // Back to back: each field starts where the one before it ends.
                    self.starts[0] = 0;
                    for i in 1..nend {
                        self.starts[i] = self.ends[i - 1];
                    }
                    return Some((nin, self.core.line() - line0));
                }
                End => return None,
            }
        }
    }

    /// The number of fields of the last row read.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Field `i` of the last row read (`i < len()`).
    fn field(&self, i: usize) -> &[u8] {
        &self.buf[self.starts[i]..self.ends[i]]
    }

    /// The fields of the last row read.
    pub(super) fn fields(&self) -> Fields<'_> {
        Fields {
            buf: &self.buf,
            starts: &self.starts[..self.len],
            ends: &self.ends[..self.len],
        }
    }

    /// The last row's fields, back to back or with the delimiters between them: for a look at
    /// all their bytes at once.
    pub(super) fn whole(&self) -> &[u8] {
        let end = self.len.checked_sub(1).map_or(0, |l| self.ends[l]);
        &self.buf[..end]
    }
}

/// The newlines in `text`: a loop over the bytes for the short text of most quoted fields,
/// where a call to memchr's counter costs more than it saves.
#[inline]
fn newlines(text: &[u8]) -> u64 {
    if text.len() < 64 {
        text.iter().filter(|&&b| b == b'\n').count() as u64
    } else {
        memchr::memchr_iter(b'\n', text).count() as u64
    }
}

/// Calls `f` with each position of `b` in `s`, in order. Fields are short, so a search per
/// field (memchr's) costs more than it saves, and a loop over the bytes was still 7
/// instructions a byte: this looks at eight at a time, as one word (no byte of `s ^ b` is zero
/// unless it is one of `b`, and the test below has no false positives).
#[inline]
fn each_byte(s: &[u8], b: u8, mut f: impl FnMut(usize)) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = u64::from_le_bytes([b; 8]);
    let mut words = s.chunks_exact(8);
    let mut base = 0;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes) ^ pattern;
        // Bit 7 of each byte of `x` that is zero, and no other bit: adding 0x7f to the low
        // seven bits sets bit 7 unless they are all zero, and never carries into the next byte.
        let mut zero = !(((x & LOW7) + LOW7) | x | LOW7);
        while zero != 0 {
            f(base + (zero.trailing_zeros() / 8) as usize);
            zero &= zero - 1;
        }
        base += 8;
    }
    for (i, &c) in words.remainder().iter().enumerate() {
        if c == b {
            f(base + i);
        }
    }
}

/// The fields of a row read by `RowReader`.
#[derive(Clone)]
pub(super) struct Fields<'a> {
    buf: &'a [u8],
    starts: &'a [usize],
    ends: &'a [usize],
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&end, ends) = self.ends.split_first()?;
        let (&start, starts) = self.starts.split_first()?;
        self.ends = ends;
        self.starts = starts;
        Some(&self.buf[start..end])
    }
}

/// Where a CSV job that starts at `start` in `bytes` ends: just after the first newline at or
/// past `first` (where a JSON job of the same size ends, just after a newline: see
/// `decode_pool::line_cut`) that an even count of quotes since `start` puts outside any quoted
/// field, and that does not end a blank line (a blank line is read with the row after it, so
/// the newline before it is no boundary). At most `job` bytes further are searched; failing
/// that, `first` is taken, and the order check finds out (see the module's note).
///
/// With `count_quotes` false, quotes are not counted: the first newline that does not end a
/// blank line is taken. Where few rows hold a newline that is a good guess, and it spares the
/// source a pass over every byte (a quarter of its time on a CSV file); the pool counts again
/// once a guess was wrong (`DecodePool::rewind`).
pub(super) fn cut(
    bytes: &[u8],
    start: usize,
    first: usize,
    job: usize,
    count_quotes: bool,
) -> usize {
    if first >= bytes.len() {
        return bytes.len();
    }
    let limit = first.saturating_add(job).min(bytes.len());
    let count = |b: &[u8]| {
        if count_quotes {
            memchr::memchr_iter(b'"', b).count()
        } else {
            0
        }
    };
    let mut quotes = count(&bytes[start..first]);
    let mut at = first;
    while quotes % 2 == 1 || (at - start >= 2 && bytes[at - 2] == b'\n') {
        let Some(j) = memchr::memchr(b'\n', &bytes[at..limit]) else {
            return first;
        };
        quotes += count(&bytes[at..at + j]);
        at += j + 1;
    }
    at
}

/// What became of one row of a job, in the order of the file.
pub(super) enum RowOut {
    Record(Value),
    /// A record the pushed-down filter drops.
    Dropped,
    Blank,
    /// Bad input: the message and the row as text.
    Bad(String, Vec<u8>),
}

/// One row of a job: the bytes and newlines its read took (see `RowReader::read`), and what it
/// is.
pub(super) struct CsvRow {
    pub(super) bytes: usize,
    pub(super) lines: u64,
    pub(super) out: RowOut,
}

/// A job's rows, and where it was cut to start, which the source checks against where the
/// rows before it ended.
pub(super) struct CsvJob {
    pub(super) start: usize,
    pub(super) rows: Vec<CsvRow>,
    /// The pushed-down filter kept every record among the rows (see `Batch::judged`).
    pub(super) judged: bool,
}

/// Reads the rows of `bytes` from `start` (taken to be a record boundary) up to the row that
/// reaches `end` or beyond, none past `bound`: what a pool worker does with a CSV job.
///
/// A row that would run past `bound`, short of the data's end, is left out with every row
/// after it: the job started at a guess inside a quoted field, or holds a row longer than the
/// guess allows for. Its rows then end before `end`, where the next job starts, so the
/// source's order check (each job must start where the rows before it end) sees the mismatch
/// and cuts again from there, counting quotes. No special case is needed: a job whose bound
/// is short of the data's end is never the last one. A record the pushed-down
/// `filter` rejects comes back as `Dropped`. The filter first judges a row on its own columns
/// alone, in one reused record (as `Prefilter` does for JSON lines): it reads no other field
/// (`Expr::input_fields`), so it decides as on the whole record, and the rows it drops are
/// never built. Only a plain `false` drops a row; an error is the filter's to report.
pub(super) fn parse_job(
    bytes: &[u8],
    start: usize,
    end: usize,
    bound: usize,
    layout: &CsvLayout,
    rr: &mut RowReader,
    filter: Option<&crate::expr::Expr>,
) -> CsvJob {
    let mut judge = filter.and_then(|f| {
        let names = f.input_fields()?;
        let keep: Vec<bool> = layout.header.iter().map(|h| names.contains(h)).collect();
        Some((f, keep, Value::Object(Map::with_capacity(names.len()))))
    });
    // A filter that compares one field with a literal is decided on that cell alone
    // (`Expr::field_test`): its column, the last of that name as a record keeps the last
    // (`None`: no such column, so the field is absent).
    let test_cell = filter
        .and_then(|f| f.field_test())
        .map(|name| layout.header.iter().rposition(|h| h == name));
    rr.reset();
    let mut rows = Vec::with_capacity((end - start) / 64 + 1);
    let mut judged = filter.is_some();
    let bound = bound.min(bytes.len());
    let mut pos = start;
    while pos < end {
        let Some((n, lines)) = rr.read(&bytes[pos..bound]) else {
            break;
        };
        if pos + n == bound && bound < bytes.len() {
            // The row may go on past the bound: it is not the whole row.
            break;
        }
        pos += n;
        let len = rr.len();
        let bad = |msg| RowOut::Bad(msg, csv_text(rr.fields(), len, layout.delim));
        let out = match layout.check(rr.fields(), len, rr.whole()) {
            Checked::Blank => RowOut::Blank,
            Checked::Bad(msg) => bad(msg),
            Checked::Record { ascii } => {
                let drops = match &mut judge {
                    Some((f, _, _)) if test_cell.is_some() => match test_cell.flatten() {
                        Some(i) => {
                            match rr.fields().nth(i).map(|c| layout.cell(i, c, len, ascii)) {
                                Some(Ok(v)) => f.field_test_holds(Some(&v)) == Some(false),
                                _ => false,
                            }
                        }
                        None => f.field_test_holds(None) == Some(false),
                    },
                    Some((f, keep, small)) => {
                        let filled = match small {
                            Value::Object(m) => {
                                m.clear();
                                layout.fill(keep, rr.fields(), len, ascii, m).is_ok()
                            }
                            _ => false,
                        };
                        filled && matches!(f.eval_bool(small), Ok(false))
                    }
                    None => false,
                };
                if drops {
                    RowOut::Dropped
                } else {
                    let mut m = Map::with_capacity(layout.header.len());
                    match layout.fill(&layout.keep, rr.fields(), len, ascii, &mut m) {
                        Err(msg) => bad(msg),
                        Ok(()) => {
                            let v = Value::Object(m);
                            // The filter on the whole record: what the judge kept may still
                            // be false (the judge could not tell) or an error, which the
                            // filter stage reports. The record is in this core's cache now;
                            // in the filter's thread it was not (a tenth of csv J1's time).
                            match filter.map(|f| f.eval_bool(&v)) {
                                Some(Ok(false)) => RowOut::Dropped,
                                Some(Err(_)) => {
                                    judged = false;
                                    RowOut::Record(v)
                                }
                                _ => RowOut::Record(v),
                            }
                        }
                    }
                }
            }
        };
        rows.push(CsvRow {
            bytes: n,
            lines,
            out,
        });
    }
    CsvJob {
        start,
        rows,
        judged,
    }
}

/// Fields of `FoldSpec` a CSV row can be folded for (the key, sums, a time): more is
/// irregular.
const MAX_FOLD_FIELDS: usize = 8;

/// Folds the rows of a CSV job into `table` for the aggregate or window downstream (see
/// `folding`), from `start` to the row that reaches `end` or beyond, as `parse_job` reads
/// them. A row folds only when it is a record `CsvLayout::row` would build and its cells are
/// what a JSON line must hold to fold: a string key (a cell inference leaves a string), counts,
/// sums of integers in `0..2^32`, a window time that is an RFC 3339 string or an integer. A
/// blank line is no record and folds as nothing. Anything else is irregular, as a column of
/// `spec` the header lacks.
pub(super) fn fold_job(
    bytes: &[u8],
    start: usize,
    end: usize,
    layout: &CsvLayout,
    rr: &mut RowReader,
    spec: &FoldSpec,
    table: &mut Table,
) -> Ack {
    // The plan folds rows for top-level names only (`Plan::new`).
    let Reader::Names { names, .. } = &spec.reader else {
        debug_assert!(false, "a CSV fold for nested paths");
        return Ack::Irregular;
    };
    // The last column of a name is the one a record keeps (`Map::insert`).
    let cols: Option<Vec<usize>> = names
        .iter()
        .map(|f| layout.header.iter().rposition(|h| h == f))
        .collect();
    let Some(cols) = cols.filter(|c| c.len() <= MAX_FOLD_FIELDS) else {
        return Ack::Irregular;
    };
    let width = layout.header.len();
    let mut job = JobFold::default();
    let mut file_lines = 0;
    rr.reset();
    let mut pos = start;
    while pos < end {
        let Some((n, lines)) = rr.read(&bytes[pos..]) else {
            break;
        };
        pos += n;
        file_lines += lines;
        let len = rr.len();
        if len == 1 && trim_cr(rr.field(0), true).is_empty() {
            continue;
        }
        let ascii = rr.whole().is_ascii();
        if len != width || (!ascii && check_utf8(rr.fields(), len).is_err()) {
            return Ack::Irregular;
        }
        let mut slots: [Option<Scalar<'_>>; MAX_FOLD_FIELDS] = [None; MAX_FOLD_FIELDS];
        for (slot, &c) in slots.iter_mut().zip(&cols) {
            let cell = trim_cr(rr.field(c), c + 1 == width);
            let cell = if ascii {
                // SAFETY: the whole row is ASCII, so every part of it is UTF-8.
                unsafe { std::str::from_utf8_unchecked(cell) }
            } else {
                match std::str::from_utf8(cell) {
                    Ok(c) => c,
                    Err(_) => return Ack::Irregular,
                }
            };
            *slot = Some(if layout.infer {
                match infer(cell) {
                    Value::Str(_) => Scalar::Str(cell),
                    Value::Int(i) => Scalar::Int(i),
                    _ => return Ack::Irregular,
                }
            } else {
                Scalar::Str(cell)
            });
        }
        if !job.record(&slots[..cols.len()], spec, table) {
            return Ack::Irregular;
        }
    }
    Ack::Folded(job.done(file_lines, pos - start, table))
}
