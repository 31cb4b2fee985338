//! Timing check for the jq expression engine: ns per record, native evaluator vs jaq's
//! interpreter, on a ten-field log record.
//!
//!     cargo run --release --example expr_bench [iterations]

use std::hint::black_box;
use std::time::Instant;
use weir::expr::Expr;
use weir::value::Value;

fn records() -> Vec<Value> {
    let paths = [
        "/",
        "/api/users",
        "/api/orders/17",
        "/static/app.js",
        "/login",
    ];
    let users = ["ann", "bob", "chloé", "dmitri", "eve"];
    (0..64)
        .map(|i| {
            let json = format!(
                r#"{{"ts":"2024-05-01T12:{:02}:{:02}Z","host":"web-{}","method":"GET","path":"{}","status":{},"bytes":{},"latency_ms":{},"user":"{}","ua":"Mozilla/5.0 (X11; Linux x86_64)","ok":{}}}"#,
                i % 60,
                (i * 7) % 60,
                i % 4,
                paths[i % paths.len()],
                [200, 200, 304, 404, 500, 503][i % 6],
                1000 + i * 37,
                (i as f64) * 1.25 + 0.5,
                users[i % users.len()],
                i % 3 != 0
            );
            Value::from_json(json.as_bytes()).expect("valid record")
        })
        .collect()
}

enum Mode {
    Bool,
    Eval,
}

fn time(expr: &Expr, mode: &Mode, recs: &[Value], iters: usize) -> f64 {
    let mut out = Vec::with_capacity(4);
    let mut sink = 0usize;
    let start = Instant::now();
    for i in 0..iters {
        let r = &recs[i % recs.len()];
        match mode {
            Mode::Bool => sink += expr.eval_bool(black_box(r)).unwrap_or(false) as usize,
            Mode::Eval => {
                out.clear();
                let _ = expr.eval(black_box(r), &mut out);
                sink += out.len();
            }
        }
    }
    black_box(sink);
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let recs = records();
    let cases: &[(&str, Mode)] = &[
        (".status >= 400", Mode::Bool),
        ("{user: .user, path: .path, status: .status}", Mode::Eval),
        (".path | ascii_downcase", Mode::Eval),
        ("select(.status > 300) | .bytes", Mode::Eval),
        ("\"\\(.host)-\\(.status)\"", Mode::Eval),
        ("{user, kb: (.bytes / 1024)}", Mode::Eval),
        (
            ".status >= 500 and (.path | startswith(\"/api\"))",
            Mode::Bool,
        ),
        (".path | test(\"^/api/[a-z]+\")", Mode::Bool),
        (".latency_ms = (.latency_ms | floor)", Mode::Eval),
        (".", Mode::Eval),
    ];
    // Baseline: the same test written by hand in Rust.
    let lit = Value::Int(400);
    let start = Instant::now();
    let mut sink = 0usize;
    for i in 0..iters {
        let r = black_box(&recs[i % recs.len()]);
        sink += r.field("status").is_some_and(|v| *v >= lit) as usize;
    }
    black_box(sink);
    println!(
        "baseline: hand-written `.status >= 400` in Rust: {:.1} ns/record",
        start.elapsed().as_nanos() as f64 / iters as f64
    );
    println!(
        "{:<52} {:>12} {:>12} {:>8}",
        "expression", "native ns", "jaq ns", "speedup"
    );
    let start = Instant::now();
    let mut out: Vec<Value> = Vec::with_capacity(4);
    let keys = [
        weir::value::Str::new("user"),
        weir::value::Str::new("path"),
        weir::value::Str::new("status"),
    ];
    for i in 0..iters {
        let r = black_box(&recs[i % recs.len()]);
        out.clear();
        let mut m = weir::value::Map::with_capacity(3);
        for k in &keys {
            m.push_unique(k.clone(), r.field(k).cloned().unwrap_or_default());
        }
        out.push(Value::Object(m));
        black_box(&out);
    }
    println!(
        "baseline: hand-written `{{user: .user, path: .path, status: .status}}`: {:.1} ns/record",
        start.elapsed().as_nanos() as f64 / iters as f64
    );
    // Optional second argument: run only the case with this index, natively (for profiling).
    let only: Option<usize> = std::env::args().nth(2).and_then(|s| s.parse().ok());
    if let Some(i) = only {
        let (src, mode) = &cases[i];
        let native = Expr::compile(src).expect("compiles");
        let n = time(&native, mode, &recs, iters);
        println!("{src}: {n:.1} ns/record");
        return;
    }
    for (src, mode) in cases {
        let native = Expr::compile(src).expect("compiles");
        let jaq = Expr::compile_fallback_only(src).expect("compiles");
        assert!(native.is_native(), "{src} should be native");
        // warm up
        time(&native, mode, &recs, iters / 20 + 1);
        time(&jaq, mode, &recs, iters / 200 + 1);
        let n = time(&native, mode, &recs, iters);
        let j = time(&jaq, mode, &recs, iters / 10 + 1);
        println!("{:<52} {:>12.1} {:>12.1} {:>7.0}x", src, n, j, j / n);
    }
}
