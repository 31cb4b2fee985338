//! Memory for a huge line: a record of one line of tens of MB costs twice the line (the line
//! read, the record parsed from it) and a few MB more, whether the file is mapped, read with
//! `read()` or through gzip, and when the string is full of escapes. Before, the read buffer
//! grew by reallocating (old and new block at once, and the allocator kept the old ones for a
//! while): 2.45x read, 2.15x through gzip, 3.1x read for a 200 MB line; and an escaped string
//! went through the JSON parser's scratch buffer: 3.3x. Measured as the peak RSS of the weir process by GNU time
//! (`%M`), which counts nothing but that process: no wall clock involved.

use crate::common::*;
use std::io::Write;

const TIME: &str = "/usr/bin/time";

/// Peak resident memory of `weir ARGS` in bytes, or `None` (said loudly) without GNU time.
fn peak_rss(dir: &std::path::Path, args: &[&str]) -> Option<u64> {
    if !std::path::Path::new(TIME).exists() {
        eprintln!("SKIPPED: {TIME} (GNU time) is not installed; .ci/run installs it");
        return None;
    }
    let o = super::weir_under(&[TIME, "-f", "peak-rss-kb %M"], dir, args);
    let err = &o.stderr;
    assert_eq!(o.code, 0, "weir {args:?} failed: {err}");
    let kb: u64 = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure from GNU time: {err}"));
    Some(kb * 1024)
}

#[test]
fn a_huge_line_costs_about_twice_its_size() {
    let p = Proj::new();
    let len = 96usize << 20;
    let mut line = Vec::with_capacity(len + 16);
    line.extend_from_slice(b"{\"a\":\"");
    line.resize(len, b'x');
    line.extend_from_slice(b"\"}\n{\"a\":1}\n");
    p.write("big.jsonl", &line);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&line).unwrap();
    p.write("big.jsonl.gz", gz.finish().unwrap());
    // A string full of escapes: parsed by weir's own scanner into the record's string, not
    // through a parser's scratch buffer first (3.3x before).
    let mut esc = Vec::with_capacity(len + 16);
    esc.extend_from_slice(b"{\"a\":\"");
    while esc.len() < len {
        esc.extend_from_slice(&[b'x'; 60]);
        esc.extend_from_slice(b"\\n");
    }
    esc.extend_from_slice(b"\"}\n{\"a\":1}\n");
    p.write("esc.jsonl", &esc);
    p.write("small.jsonl", "{\"a\":1}\n");
    let toml = |path: &str, at_end: &str| {
        format!(
            "[sources.s]\ntype = \"file\"\npath = \"{path}\"\nat_end = \"{at_end}\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"out.jsonl\"\n\
             [checkpoint]\nevery = \"off\"\n"
        )
    };
    p.write("small.toml", toml("small.jsonl", "finish"));
    // The base is the most of three runs on a one-line file: it moves by up to 4 MB from run
    // to run (30.7 to 34.8 MB on the CI machine), and a low one once put a 2.04x line at 2.08x.
    let mut base = 0;
    for _ in 0..3 {
        let Some(b) = peak_rss(p.root(), &["run", "-q", "small.toml"]) else {
            return;
        };
        base = base.max(b);
    }
    // Mapped (finish), read() (pause), and through gzip.
    for (input, at_end) in [
        ("big.jsonl", "finish"),
        ("big.jsonl", "pause"),
        ("big.jsonl.gz", "finish"),
        ("esc.jsonl", "finish"),
    ] {
        p.write("p.toml", toml(input, at_end));
        let peak = peak_rss(p.root(), &["run", "-q", "p.toml"]).unwrap();
        let want = if input == "esc.jsonl" { &esc } else { &line };
        assert!(
            p.read("out.jsonl") == *want,
            "{input} {at_end}: the output differs"
        );
        let extra = peak.saturating_sub(base);
        let ratio = extra as f64 / len as f64;
        eprintln!(
            "{input} at_end={at_end}: peak RSS {} kB over a {} kB base: {ratio:.3}x the line",
            peak >> 10,
            base >> 10
        );
        // Twice the line, and room for what does not grow with it (the parse threads' first
        // allocations: about 3.5 MB whatever the line's size).
        assert!(
            extra <= 2 * len as u64 + SLACK,
            "{input} at_end={at_end}: a {} MB line cost {} kB ({ratio:.3}x)",
            len >> 20,
            extra >> 10
        );
    }
}

/// What a huge line may cost beyond twice its size.
const SLACK: u64 = 6 << 20;

/// A line far longer than what one read of a `.gz` brings (tens of kB of incompressible data)
/// is searched for its end only in the bytes each read adds. It was searched from its start
/// after every read: 89 s for a 48 MB line here, quadratic in the line, so this one (64 MB)
/// took minutes and hit the timeout; now a few seconds.
#[test]
fn a_huge_line_in_a_gz_is_read_in_linear_time() {
    let p = Proj::new();
    let len = 64usize << 20;
    let mut rng = Rng(15);
    let mut line = Vec::with_capacity(len + 16);
    line.extend_from_slice(b"{\"a\":\"");
    while line.len() < len {
        let r = rng.next_u64();
        // Eight letters of 64: little for gzip to fold, so each read brings a small piece.
        line.extend((0..8).map(|i| {
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
                [(r >> (i * 6)) as usize & 63]
        }));
    }
    line.extend_from_slice(b"\"}\n{\"a\":1}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&line).unwrap();
    p.write("big.jsonl.gz", gz.finish().unwrap());
    p.write(
        "p.toml",
        "[sources.s]\ntype = \"file\"\npath = \"big.jsonl.gz\"\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"out.jsonl\"\n\
         [checkpoint]\nevery = \"off\"\n",
    );
    let o = run_weir(p.root(), &["run", "-q", "p.toml"], None);
    expect_exit(&o, Some(0));
    assert!(
        p.read("out.jsonl") == line,
        "the output differs from the input"
    );
}
