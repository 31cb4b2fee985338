//! The decode pool reads CSV and TSV exactly as the sequential reader does: the same records,
//! dead letters, line numbers, offsets and checkpoint states after every read, on random files
//! with quotes, quoted newlines, stray quotes, CRLF, blank lines, byte order marks, bad UTF-8
//! and rows of the wrong width, for every job size.

use super::{FileSource, FileSourceSettings, POOL_JOB_BYTES};
use crate::pipeline::spec::{AtEnd, Format, OnError};
use crate::runtime::context::{Context, SourceInfo};
use crate::runtime::message::Msg;
use crate::runtime::stage::Output;
use crate::sources::{ReadStatus, Source};
use crate::value::Str;
use proptest::prelude::*;
use std::sync::{Arc, RwLock};

/// What a run of the source gave: per read call, the records (origin and value), the dead
/// letters and the source's state after the call.
#[derive(Debug, PartialEq)]
struct Run {
    calls: Vec<(Vec<String>, Vec<String>, String)>,
}

struct Setup<'a> {
    format: Format,
    infer: bool,
    fields: Option<Vec<Vec<Str>>>,
    filter: Option<&'a str>,
    /// Records per read call.
    batch: usize,
}

fn run(path: &std::path::Path, s: &Setup, threads: usize, job_bytes: usize) -> Run {
    let (reports, _keep) = crossbeam_channel::unbounded();
    let info = SourceInfo {
        name: "s".into(),
        on_error: OnError::DeadLetter,
        files: RwLock::new(Vec::new()),
    };
    let ctx = Arc::new(Context::new(
        vec!["s".into(), "f".into()],
        vec![Some(info), None],
        reports,
        true,
        0,
    ));
    let pushdown = s
        .filter
        .map(|f| (crate::expr::Expr::compile(f).expect("filter compiles"), 1));
    let settings = FileSourceSettings {
        node: 0,
        pattern: path.display().to_string(),
        path: path.to_path_buf(),
        format: s.format,
        at_end: AtEnd::Finish,
        infer_types: s.infer,
        fingerprint_bytes: 1024,
        fields: s.fields.clone(),
        parallel_parse: false,
        parse_threads: threads,
        job_bytes: super::JobBytes::fixed(job_bytes),
        // Only the pool runs a pushed-down filter; the sequential run is filtered below.
        pushdown: if threads > 0 { pushdown.clone() } else { None },
        folding: None,
    };
    let mut src = FileSource::new(settings, ctx.clone(), None).expect("source starts");
    let (tx, rx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    let mut out = Output::new(0, ctx, vec![tx], vec![], vec![(0, etx)]);
    let mut calls = Vec::new();
    for seq in 0.. {
        let Ok((_, status)) = src.read(s.batch, &mut out) else {
            panic!("the source stopped under dead_letter");
        };
        assert!(out.flush_batch(seq, true).is_ok(), "channels open");
        let mut records = Vec::new();
        let mut dead = Vec::new();
        for (rx, acc) in [(&rx, &mut records), (&erx, &mut dead)] {
            for m in rx.try_iter() {
                let Msg::Batch(b) = m else { continue };
                acc.extend(b.records.into_iter().map(|r| (r.origin, r.value)));
            }
        }
        let keep = |v: &crate::value::Value| match &pushdown {
            Some((f, _)) if threads == 0 => !matches!(f.eval_bool(v), Ok(false)),
            _ => true,
        };
        let records = records
            .into_iter()
            .filter(|(_, v)| keep(v))
            .map(|(o, v)| format!("{}:{}:{} {}", o.file, o.line, o.offset, v.to_json_string()))
            .collect();
        let dead = dead
            .into_iter()
            .map(|(o, v)| format!("{}:{} {}", o.line, o.offset, v.to_json_string()))
            .collect();
        let state = String::from_utf8(src.snapshot().expect("snapshot")).expect("JSON");
        calls.push((records, dead, state));
        if status == ReadStatus::Eof {
            break;
        }
        assert!(seq < 100_000, "the source never ends");
    }
    Run { calls }
}

/// A cell: plain, a number, quoted with a delimiter, a quote, a newline or a CRLF inside, a
/// stray quote in an unquoted cell, bad UTF-8, a byte order mark, non-ASCII, or empty.
fn cell() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-c]{1,3}".prop_map(String::into_bytes),
        2 => (0i64..300).prop_map(|i| i.to_string().into_bytes()),
        1 => Just(b"\"x,y\"".to_vec()),
        1 => Just(b"\"say \"\"hi\"\"\"".to_vec()),
        1 => Just(b"\"two\nlines\"".to_vec()),
        1 => Just(b"\"crlf\r\ninside\"".to_vec()),
        1 => Just(b"5'10\"".to_vec()),
        1 => Just(b"\"\n\n\"".to_vec()),
        1 => Just(b"bad\xffutf8".to_vec()),
        1 => Just(b"\xEF\xBB\xBFbom".to_vec()),
        1 => Just("héllo".as_bytes().to_vec()),
        1 => Just(Vec::new()),
        1 => Just(b"\"".to_vec()),
        // Text after a closing quote (read as unquoted, quotes and all), a field that is one
        // quote, an empty quoted field, a quoted field ending in a doubled quote.
        1 => Just(b"\"a\"b\"c".to_vec()),
        1 => Just(b"\"\"\"\"".to_vec()),
        1 => Just(b"\"\"".to_vec()),
        1 => Just(b"\"x\"\"\"".to_vec()),
        1 => Just(b"\"q\" \r".to_vec()),
    ]
}

/// A file: an optional byte order mark and blank lines, a header of 1-3 names (sometimes bad
/// UTF-8), then rows of 1-4 cells (the header's width mostly), with `\n` or `\r\n` ends,
/// blank lines between, and the last line with or without its end.
fn file(delim: u8) -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        6 => Just(vec![b"a".to_vec(), b"b".to_vec()]),
        2 => Just(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]),
        1 => Just(vec![b"a".to_vec()]),
        1 => Just(vec![b"a".to_vec(), b"a".to_vec()]),
        1 => Just(vec![b"a\xff".to_vec(), b"b".to_vec()]),
    ];
    let row = (
        prop::collection::vec(cell(), 1..5),
        prop_oneof![5 => Just("\n"), 2 => Just("\r\n"), 1 => Just("\n\n"), 1 => Just("\r\n\r\n")],
        any::<bool>(),
    );
    (
        any::<bool>(),
        0usize..2,
        header,
        prop::collection::vec(row, 0..40),
        any::<bool>(),
    )
        .prop_map(move |(bom, blanks, header, rows, last_end)| {
            let mut f = Vec::new();
            if bom {
                f.extend_from_slice(b"\xEF\xBB\xBF");
            }
            f.resize(f.len() + blanks, b'\n');
            let width = header.len();
            f.extend_from_slice(&header.join(&delim));
            f.push(b'\n');
            let n = rows.len();
            for (i, (mut cells, end, fit)) in rows.into_iter().enumerate() {
                // Most rows fit the header; the rest are too short or too long.
                if fit {
                    cells.resize(width, b"z".to_vec());
                }
                f.extend_from_slice(&cells.join(&delim));
                if i + 1 < n || last_end {
                    f.extend_from_slice(end.as_bytes());
                }
            }
            f
        })
}

fn setup_strategy() -> impl Strategy<Value = (bool, bool, Option<usize>, usize)> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0usize..8),
        1usize..50,
    )
}

fn compare(bytes: &[u8], s: &Setup, job_bytes: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = if s.format == Format::Tsv {
        "in.tsv"
    } else {
        "in.csv"
    };
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("written");
    let want = run(&path, s, 0, POOL_JOB_BYTES);
    for threads in [1, 2, 3] {
        let got = run(&path, s, threads, job_bytes);
        prop_assert_eq!(
            &got,
            &want,
            "threads {}, job {} bytes, file {:?}",
            threads,
            job_bytes,
            String::from_utf8_lossy(bytes)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_pool_reads_csv_as_the_sequential_reader_does(
        bytes in file(b','),
        (infer, project, filter, batch) in setup_strategy(),
        job in 1usize..300,
    ) {
        // Judged on their own columns first (the first four on the one cell they compare,
        // `.zz` on a column no file has); the last reads the record whole, and `.a - 1` fails
        // on a string (an error never drops a row).
        let filters = [
            ".a != 1",
            ".a >= 5",
            ".b == \"abc\"",
            ".zz == null",
            ".b == \"abc\" or .a == 7",
            "(.a | length) > 1",
            ".a - 1 > 5",
            "length > 1",
        ];
        let s = Setup {
            format: Format::Csv,
            infer,
            // As the plan projects: the filter's fields (a, b) among the kept ones.
            fields: project.then(|| vec![vec![Str::new("a")], vec![Str::new("b"), Str::new("x")]]),
            filter: filter.map(|i| filters[i]),
            batch,
        };
        compare(&bytes, &s, job)?;
    }

    #[test]
    fn the_pool_reads_tsv_as_the_sequential_reader_does(
        bytes in file(b'\t'),
        (infer, _, _, batch) in setup_strategy(),
        job in 1usize..300,
    ) {
        let s = Setup { format: Format::Tsv, infer, fields: None, filter: None, batch };
        compare(&bytes, &s, job)?;
    }
}

/// Every job size from one byte to past the whole file, on a file with each awkward case.
#[test]
fn every_job_size_reads_the_same() {
    let text: &[u8] = b"\xEF\xBB\xBF\na,b\n1,\"x\ny\"\r\n\n2,5'10\"\n\"q\"\"\",\"\n\n\"\n3\n\xEF\xBB\xBF4,\xff\n\r\n5,6,7\n8,\"a,b\"";
    let s = Setup {
        format: Format::Csv,
        infer: true,
        fields: None,
        filter: None,
        batch: 3,
    };
    for job in 1..=text.len() + 1 {
        compare(text, &s, job).unwrap();
    }
}

/// A filter on one cell judges the cell the record keeps: with a column named twice, the last
/// (`3,abc` passes `.a >= 5`, as `{"a":"abc"}` does; `7,1` does not), with and without
/// inference, and on a CRLF row's last cell.
#[test]
fn a_one_cell_filter_reads_the_cell_the_record_keeps() {
    let text: &[u8] = b"a,a\n3,abc\n7,1\n9,6\r\n1,\n";
    for infer in [true, false] {
        for filter in [".a >= 5", ".a == \"6\"", ".a == 6", ".a == \"\""] {
            let s = Setup {
                format: Format::Csv,
                infer,
                fields: None,
                filter: Some(filter),
                batch: 2,
            };
            compare(text, &s, POOL_JOB_BYTES).unwrap();
        }
    }
}

/// Every delimiter of a line is found, at any place in a word of eight bytes, next to bytes
/// that differ from it by one bit or are all ones.
#[test]
fn rows_are_split_at_every_delimiter() {
    use super::csv_rows::RowReader;
    for d in [b',', b'\t', 0x80, 0xff, 0] {
        for len in 0..40usize {
            for at in 0..len {
                let mut line: Vec<u8> = (0..len)
                    .map(|i| [d ^ 1, d ^ 0x80, 0xff, b'a'][i % 4])
                    .collect();
                line.retain(|&c| c != b'\n' && c != b'"');
                if at >= line.len() {
                    continue;
                }
                let last = line.len() - 1;
                line[at] = d;
                line[last] = d;
                let mut rr = RowReader::new(d);
                let n = rr.read(&line).map(|(n, _)| n);
                assert_eq!(n, Some(line.len()), "{d} {len} {at}");
                let want: Vec<&[u8]> = line.split(|&c| c == d).collect();
                let got: Vec<&[u8]> = rr.fields().collect();
                assert_eq!(got, want, "{d} {len} {at}");
            }
        }
    }
}

/// The parity rule cuts after a newline outside quotes and not ending a blank line, and gives
/// up (taking the first newline) when none is near.
#[test]
fn jobs_are_cut_outside_quotes() {
    use super::decode_pool::line_cut;
    let cut =
        |b: &[u8], start, job| super::csv_rows::cut(b, start, line_cut(b, start, job), job, true);
    let b = b"a,\"x\ny\"\nb\n\nc\nd\n";
    // A 4-byte job: the newline at 4 is inside quotes (one quote before it), the one at 7
    // is not.
    assert_eq!(cut(b, 0, 4), 8);
    // 10 bytes: the newline at 10 ends a blank line; the one at 12 is next.
    assert_eq!(cut(b, 0, 10), 13);
    assert_eq!(cut(b, 0, 100), b.len());
    // An unclosed quote, and no even count within another job's length: the first newline.
    let odd = b"\"a\nb\nc\nd\ne\nf\n";
    assert_eq!(cut(odd, 0, 4), 5);
    // A guess, without counting: the first newline that ends no blank line, inside quotes
    // or not.
    let guess =
        |b: &[u8], start, job| super::csv_rows::cut(b, start, line_cut(b, start, job), job, false);
    assert_eq!(guess(b, 0, 4), 5);
    assert_eq!(guess(b, 0, 10), 13);
    assert_eq!(guess(b, 0, 100), b.len());
}

/// Jobs cut at guesses: one just inside a quoted field that ends in a newline (the job after
/// it would read the rest of the file as one row), and a quoted field of 1.5 MiB with newlines
/// in it (longer than a guessed job may read past its end), in a file of about 2 MB, read as the
/// sequential reader reads it.
#[test]
fn guessed_cuts_inside_quoted_fields_read_the_same() {
    let mut text = b"a,b\n".to_vec();
    text.extend(format!("1,\"{}\n\"\n", "x".repeat(100)).bytes());
    for i in 0..100_000 {
        text.extend(format!("{},c\n", i % 10).bytes());
    }
    let long = "y".repeat(99) + "\n";
    text.extend(format!("2,\"{}\"\n", long.repeat(15_000)).bytes());
    for i in 0..1000 {
        text.extend(format!("{},d\n", i % 10).bytes());
    }
    let s = Setup {
        format: Format::Csv,
        infer: true,
        fields: None,
        filter: None,
        batch: 1024,
    };
    compare(&text, &s, 100).unwrap();
}

/// Folds `text` (after its header row) as a worker folds a CSV job for an aggregate keyed by
/// `user` counting and summing `bytes`.
fn fold_csv(text: &[u8]) -> (crate::sources::folding::Ack, crate::sources::folding::Table) {
    use super::csv_rows::{fold_job, CsvLayout, RowReader};
    use crate::sources::folding::{FoldSpec, Table};
    let spec = FoldSpec::new(&[Str::new("user")], &[None, Some(vec![Str::new("bytes")])]).unwrap();
    let header = [Str::new("user"), Str::new("bytes"), Str::new("x")];
    let layout = CsvLayout::new(&header, None, true, b',');
    let mut t = Table::default();
    let ack = fold_job(
        text,
        0,
        text.len(),
        &layout,
        &mut RowReader::new(b','),
        &spec,
        &mut t,
    );
    (ack, t)
}

/// A CSV row folds when the record it makes would fold as a JSON line does: a string key,
/// integer sums in 0..2^32; a blank line is no record; quoted fields and CRLF are read as
/// the record reader reads them.
#[test]
fn csv_rows_fold_as_their_records_would() {
    use crate::sources::folding::{Ack, Folded};
    let text = b"b,5,q\r\na,7,\"x\ny, \"\"z\"\"\"\n\r\nb,4294967295,\n\"b\",0,\"\"";
    let (ack, t) = fold_csv(text);
    let Ack::Folded(f) = ack else {
        panic!("irregular: {ack:?}")
    };
    assert_eq!(
        f,
        Folded {
            lines: 4,
            file_lines: 5,
            bytes: text.len(),
            full: false,
            late: 0,
            min_end: i64::MAX,
            max_time: None,
        }
    );
    assert_eq!(t.keys, vec![Str::new("b"), Str::new("a")]);
    assert_eq!(t.vals, vec![3, 5 + 4294967295, 1, 7]);
    for row in [
        &b"a,1.5,x"[..],
        b"a,-1,x",
        b"a,4294967296,x",
        b"a,,x",
        b"a,007,x",
        b"7,1,x",
        b"a,1",
        b"a,1,x,y",
        b"a,1,\xff",
    ] {
        let text = [&b"z,2,x\n"[..], row, b"\n"].concat();
        let (ack, t) = fold_csv(&text);
        let row = String::from_utf8_lossy(row);
        assert_eq!(ack, Ack::Irregular, "{row:?}");
        // The row before was folded; the table is thrown away by the caller.
        assert_eq!(t.keys, vec![Str::new("z")], "{row:?}");
    }
}

/// Rows past what the row reader first holds (64 fields, 4 kB), split by hand or by csv-core:
/// a header and rows of 100 fields, an unquoted row of 10 kB, a quoted field of 10 kB with
/// newlines and doubled quotes in it; and bytes neither reader treats specially (a lone `\r`
/// inside a field, NUL, a quote ending an unquoted field, a row that ends inside quotes).
#[test]
fn wide_and_long_rows_read_the_same() {
    let width = 100;
    let mut text: Vec<u8> = (0..width)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    text.push(b'\n');
    let row = |cell: &dyn Fn(usize) -> Vec<u8>| -> Vec<u8> {
        let mut r = (0..width).map(cell).collect::<Vec<_>>().join(&b","[..]);
        r.push(b'\n');
        r
    };
    text.extend(row(&|i| i.to_string().into_bytes()));
    text.extend(row(&|i| {
        if i == 3 {
            vec![b'y'; 10_000]
        } else {
            b"x".to_vec()
        }
    }));
    text.extend(row(&|i| match i {
        5 => [&b"\"q"[..], &b"a\"\"\nb".repeat(2_000), b"\""].concat(),
        _ => b"z".to_vec(),
    }));
    text.extend(row(&|i| match i {
        0 => b"a\rb".to_vec(),
        1 => b"n\0l".to_vec(),
        2 => b"ends\"".to_vec(),
        _ => b"w".to_vec(),
    }));
    // Too wide, then a row whose quote never closes.
    text.extend(row(&|i| format!("{i},{i}").into_bytes()));
    text.extend_from_slice(b"\"open,never\nclosed,");
    let s = Setup {
        format: Format::Csv,
        infer: true,
        fields: None,
        filter: None,
        batch: 2,
    };
    for job in [1, 7, 64, 4095, 4097, 20_000, POOL_JOB_BYTES] {
        compare(&text, &s, job).unwrap();
    }
}
