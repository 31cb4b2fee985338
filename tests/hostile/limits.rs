//! Memory for a huge line: a record of one 40 MB line may cost about twice the line (the line
//! read, the record parsed from it), not four or five times as before (measured 2.2x mapped or
//! read, 2.6x through gzip, where the allocator keeps the buffers it grew through for a while;
//! the bound leaves room for that). Measured as the peak RSS of the weir
//! process by GNU time (`%M`), which counts nothing but that process: no wall clock involved.

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
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "weir {args:?} failed: {err}");
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
    let len = 40usize << 20;
    let mut line = Vec::with_capacity(len + 16);
    line.extend_from_slice(b"{\"a\":\"");
    line.resize(len, b'x');
    line.extend_from_slice(b"\"}\n{\"a\":1}\n");
    p.write("big.jsonl", &line);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&line).unwrap();
    p.write("big.jsonl.gz", gz.finish().unwrap());
    p.write("small.jsonl", "{\"a\":1}\n");
    let toml = |path: &str, at_end: &str| {
        format!(
            "[sources.s]\ntype = \"file\"\npath = \"{path}\"\nat_end = \"{at_end}\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"out.jsonl\"\n\
             [checkpoint]\nevery = \"off\"\n"
        )
    };
    p.write("small.toml", toml("small.jsonl", "finish"));
    let Some(base) = peak_rss(p.root(), &["run", "-q", "small.toml"]) else {
        return;
    };
    // Mapped (finish), read() (pause), and through gzip.
    for (input, at_end) in [
        ("big.jsonl", "finish"),
        ("big.jsonl", "pause"),
        ("big.jsonl.gz", "finish"),
    ] {
        p.write("p.toml", toml(input, at_end));
        let peak = peak_rss(p.root(), &["run", "-q", "p.toml"]).unwrap();
        assert_eq!(
            p.read("out.jsonl"),
            line,
            "{input} {at_end}: the output differs"
        );
        let extra = peak.saturating_sub(base);
        let ratio = extra as f64 / len as f64;
        eprintln!(
            "{input} at_end={at_end}: peak RSS {} MB over a {} MB base: {ratio:.2}x the line",
            peak >> 20,
            base >> 20
        );
        assert!(
            ratio < 2.75,
            "{input} at_end={at_end}: a {} MB line cost {} MB ({ratio:.2}x)",
            len >> 20,
            extra >> 20
        );
    }
}
