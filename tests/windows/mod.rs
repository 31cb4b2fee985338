//! Event time: weir's window output compared with an independent reference written here (a
//! brute-force simulation of SPEC section 2's rules, sharing no code with weir), on seeded
//! random streams with out-of-order and late records across a day boundary; sessions that
//! merge; dedup and state TTL; and a kill -9 loop over a windowed pipeline.

use crate::common::{spawn_at, Spawn};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Output;

fn run(dir: &Path, args: &[&str]) -> Output {
    crate::common::run_weir(dir, args, None)
}

/// A tiny deterministic generator (xorshift), so the streams are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone)]
struct Ev {
    t: i64,
    key: String,
    v: i64,
}

/// Events around midnight of 2026-11-21 (UTC): mostly increasing, some out of order by up to
/// 8 s, and now and then one far behind (late).
fn stream(seed: u64, n: usize) -> Vec<Ev> {
    let mut r = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let midnight = 1_795_305_600i64; // 2026-11-22T00:00:00Z
    let mut t = midnight - 400;
    let mut out = Vec::new();
    for _ in 0..n {
        t += r.below(4) as i64;
        let jitter = r.below(9) as i64;
        let late = if r.below(25) == 0 {
            60 + r.below(120) as i64
        } else {
            0
        };
        out.push(Ev {
            t: t - jitter - late,
            key: format!("k{}", r.below(4)),
            v: r.below(100) as i64 - 20,
        });
    }
    out
}

fn rfc3339(s: i64) -> String {
    jiff::Timestamp::from_second(s).unwrap().to_string()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

#[derive(Clone, Default, Debug)]
struct Agg {
    n: i64,
    sum: i64,
    min: Option<i64>,
    max: Option<i64>,
}

impl Agg {
    fn add(&mut self, v: i64) {
        self.n += 1;
        self.sum += v;
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
    }
    fn merge(&mut self, o: &Agg) {
        self.n += o.n;
        self.sum += o.sum;
        for v in o.min.iter().chain(o.max.iter()) {
            self.min = Some(self.min.map_or(*v, |m| m.min(*v)));
            self.max = Some(self.max.map_or(*v, |m| m.max(*v)));
        }
    }
}

fn line(key: &str, start: i64, end: i64, a: &Agg) -> String {
    format!(
        "{{\"key\":\"{key}\",\"window_start\":\"{}\",\"window_end\":\"{}\",\"n\":{},\"s\":{},\"lo\":{},\"hi\":{}}}",
        rfc3339(start),
        rfc3339(end),
        a.n,
        a.sum,
        a.min.unwrap(),
        a.max.unwrap()
    )
}

/// The reference: returns (window output lines, late records' indexes).
fn reference(evs: &[Ev], kind: Kind, ooo: i64, lateness: i64) -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut late = Vec::new();
    let mut wm = i64::MIN;
    let mut max_t = i64::MIN;
    // (start, end, key) -> (agg, fired)
    let mut wins: BTreeMap<(i64, i64, String), (Agg, bool)> = BTreeMap::new();
    let mut sessions: HashMap<String, Vec<(i64, i64, Agg, bool)>> = HashMap::new();
    for (i, e) in evs.iter().enumerate() {
        match kind {
            Kind::Session(gap) => {
                let (s, en) = (e.t, e.t + gap);
                if en + lateness <= wm {
                    late.push(i);
                    continue;
                }
                let list = sessions.entry(e.key.clone()).or_default();
                let mut agg = Agg::default();
                agg.add(e.v);
                let (mut ms, mut me) = (s, en);
                let mut parts: Vec<(i64, i64, Agg, bool)> = Vec::new();
                list.retain(|w| {
                    if w.0 <= en && s <= w.1 {
                        parts.push(w.clone());
                        false
                    } else {
                        true
                    }
                });
                parts.push((s, en, agg, false));
                parts.sort_by_key(|p| (p.0, p.1));
                let mut total = Agg::default();
                for p in &parts {
                    ms = ms.min(p.0);
                    me = me.max(p.1);
                    total.merge(&p.2);
                }
                let fired = me <= wm;
                if fired {
                    out.push(line(&e.key, ms, me, &total));
                }
                list.push((ms, me, total, fired));
            }
            _ => {
                let mut mine = Vec::new();
                match kind {
                    Kind::Tumbling(size) => {
                        let st = e.t.div_euclid(size) * size;
                        mine.push((st, st + size));
                    }
                    Kind::Sliding(size, slide) => {
                        // Brute force: every slide-aligned start within size of t.
                        let mut st = (e.t - size).div_euclid(slide) * slide;
                        while st <= e.t {
                            if st <= e.t && e.t < st + size {
                                mine.push((st, st + size));
                            }
                            st += slide;
                        }
                    }
                    Kind::Session(_) => unreachable!(),
                }
                let live: Vec<(i64, i64)> = mine
                    .iter()
                    .copied()
                    .filter(|w| w.1 + lateness > wm)
                    .collect();
                if !mine.is_empty() && live.is_empty() {
                    late.push(i);
                    continue;
                }
                for w in live {
                    let ent = wins
                        .entry((w.0, w.1, e.key.clone()))
                        .or_insert((Agg::default(), false));
                    ent.0.add(e.v);
                    if w.1 <= wm {
                        ent.1 = true;
                        out.push(line(&e.key, w.0, w.1, &ent.0));
                    }
                }
            }
        }
        max_t = max_t.max(e.t);
        let new_wm = max_t - ooo;
        if new_wm > wm {
            wm = new_wm;
            // Fire, ordered by end, start, key.
            let mut due: Vec<(i64, i64, String, Agg)> = Vec::new();
            for ((s, en, k), (a, fired)) in wins.iter_mut() {
                if !*fired && *en <= wm {
                    *fired = true;
                    due.push((*en, *s, k.clone(), a.clone()));
                }
            }
            for (k, list) in sessions.iter_mut() {
                for w in list.iter_mut() {
                    if !w.3 && w.1 <= wm {
                        w.3 = true;
                        due.push((w.1, w.0, k.clone(), w.2.clone()));
                    }
                }
                // Past the lateness, a session is gone and cannot be merged into.
                list.retain(|w| w.1 + lateness > wm);
            }
            due.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
            for (en, s, k, a) in due {
                out.push(line(&k, s, en, &a));
            }
        }
    }
    // End of input: everything still open fires.
    let mut rest: Vec<(i64, i64, String, Agg)> = Vec::new();
    for ((s, en, k), (a, fired)) in &wins {
        if !fired {
            rest.push((*en, *s, k.clone(), a.clone()));
        }
    }
    for (k, list) in &sessions {
        for w in list {
            if !w.3 {
                rest.push((w.1, w.0, k.clone(), w.2.clone()));
            }
        }
    }
    rest.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    for (en, s, k, a) in rest {
        out.push(line(&k, s, en, &a));
    }
    (out, late)
}

fn write_input(dir: &Path, evs: &[Ev], rfc: bool) {
    let mut s = String::new();
    for (i, e) in evs.iter().enumerate() {
        if rfc {
            s.push_str(&format!(
                "{{\"i\":{i},\"ts\":\"{}\",\"key\":\"{}\",\"v\":{}}}\n",
                rfc3339(e.t),
                e.key,
                e.v
            ));
        } else {
            s.push_str(&format!(
                "{{\"i\":{i},\"ts\":{},\"key\":\"{}\",\"v\":{}}}\n",
                e.t, e.key, e.v
            ));
        }
    }
    std::fs::write(dir.join("in.jsonl"), s).unwrap();
}

fn window_toml(kind: Kind, ooo: i64, lateness: i64, rfc: bool, checkpoint: &str) -> String {
    let shape = match kind {
        Kind::Tumbling(s) => format!("size = \"{s}s\""),
        Kind::Sliding(s, sl) => format!("size = \"{s}s\"\nslide = \"{sl}s\""),
        Kind::Session(g) => format!("gap = \"{g}s\""),
    };
    format!(
        r#"name = "w"
[checkpoint]
{checkpoint}
[sources.in]
type = "file"
path = "in.jsonl"
[transforms.win]
type = "window"
inputs = ["in"]
key = ".key"
time = ".ts"
{unit}
{shape}
out_of_orderness = "{ooo}s"
allowed_lateness = "{lateness}s"
aggs = {{ n = "count", s = "sum(.v)", lo = "min(.v)", hi = "max(.v)" }}
[sinks.out]
type = "file"
inputs = ["win"]
path = "out/w.jsonl"
[sinks.late]
type = "file"
inputs = ["win.late"]
path = "out/late.jsonl"
"#,
        unit = if rfc { "" } else { "time_unit = \"s\"" }
    )
}

fn check(seed: u64, n: usize, kind: Kind, ooo: i64, lateness: i64, rfc: bool) {
    let evs = stream(seed, n);
    let (want, late) = reference(&evs, kind, ooo, lateness);
    let d = tempfile::tempdir().unwrap();
    write_input(d.path(), &evs, rfc);
    std::fs::write(
        d.path().join("p.toml"),
        window_toml(kind, ooo, lateness, rfc, "every = \"off\""),
    )
    .unwrap();
    let o = run(d.path(), &["run", "--stats", "stats.json", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = std::fs::read_to_string(d.path().join("out/w.jsonl")).unwrap();
    let got: Vec<&str> = got.lines().collect();
    assert!(!want.is_empty());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{kind:?} seed {seed}: line {} differs", i + 1);
    }
    assert_eq!(got.len(), want.len(), "{kind:?} seed {seed}: line count");
    let late_got = std::fs::read_to_string(d.path().join("out/late.jsonl")).unwrap();
    let late_idx: Vec<usize> = late_got
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["i"].as_u64().unwrap() as usize
        })
        .collect();
    assert_eq!(late_idx, late, "{kind:?} seed {seed}: late records");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("stats.json")).unwrap())
            .unwrap();
    let win = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["node"] == "win")
        .unwrap();
    assert_eq!(win["late"].as_u64().unwrap() as usize, late.len());
}

#[test]
fn tumbling_windows_match_the_reference() {
    for seed in 1..=4 {
        check(seed, 600, Kind::Tumbling(60), 10, 30, seed % 2 == 0);
    }
}

#[test]
fn tumbling_windows_without_lateness_match_the_reference() {
    for seed in 5..=7 {
        check(seed, 500, Kind::Tumbling(30), 5, 0, true);
    }
}

#[test]
fn sliding_windows_match_the_reference() {
    for seed in 11..=13 {
        check(seed, 400, Kind::Sliding(60, 20), 8, 15, seed % 2 == 1);
    }
}

#[test]
fn session_windows_match_the_reference() {
    for seed in 21..=24 {
        check(seed, 400, Kind::Session(5), 6, 20, seed % 2 == 0);
    }
}

#[test]
fn session_windows_merge_when_a_record_bridges_them() {
    let d = tempfile::tempdir().unwrap();
    // Sessions [0,10) and [14,24) are apart until a click at 9 arrives: [9,19) meets both,
    // so the key ends with one session [0,24) of three clicks.
    let s = "{\"ts\":0,\"key\":\"a\",\"v\":1}\n{\"ts\":14,\"key\":\"a\",\"v\":2}\n{\"ts\":9,\"key\":\"a\",\"v\":4}\n";
    std::fs::write(d.path().join("in.jsonl"), s).unwrap();
    std::fs::write(
        d.path().join("p.toml"),
        window_toml(Kind::Session(10), 30, 0, false, "every = \"off\""),
    )
    .unwrap();
    let o = run(d.path(), &["run", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = std::fs::read_to_string(d.path().join("out/w.jsonl")).unwrap();
    assert_eq!(
        got,
        "{\"key\":\"a\",\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:00:24Z\",\"n\":3,\"s\":7,\"lo\":1,\"hi\":4}\n"
    );
}

#[test]
fn a_record_without_a_readable_time_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("in.jsonl"),
        "{\"ts\":\"2026-11-21T10:00:00Z\",\"key\":\"a\",\"v\":1}\n{\"ts\":\"yesterday\",\"key\":\"a\",\"v\":1}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("p.toml"),
        window_toml(Kind::Tumbling(60), 0, 0, true, "every = \"off\""),
    )
    .unwrap();
    let o = run(d.path(), &["run", "p.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(":2 ") && err.contains("yesterday"), "{err}");
}

/// `pause` keeps open windows in the checkpoint; appending and resuming fires them when the
/// watermark passes, and the total equals one run over everything.
#[test]
fn paused_windows_fire_in_a_later_run() {
    let evs = stream(31, 400);
    let (want, _) = reference(&evs, Kind::Tumbling(60), 10, 30);
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.toml"),
        window_toml(Kind::Tumbling(60), 10, 30, true, "every = \"1h\""),
    )
    .unwrap();
    // First half, paused; then the rest appended, paused; then finish.
    write_input(d.path(), &evs[..200], true);
    let o = run(d.path(), &["run", "--at-end", "pause", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut all = std::fs::read_to_string(d.path().join("in.jsonl")).unwrap();
    write_input(d.path(), &evs, true);
    let full = std::fs::read_to_string(d.path().join("in.jsonl")).unwrap();
    assert!(full.starts_with(&all));
    all = full;
    std::fs::write(d.path().join("in.jsonl"), &all).unwrap();
    let o = run(d.path(), &["resume", "--at-end", "pause", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(d.path(), &["resume", "--at-end", "finish", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = std::fs::read_to_string(d.path().join("out/w.jsonl")).unwrap();
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}

/// kill -9 at seeded random moments while windows are open; resumed to the end, the window
/// output and the late file are byte-identical to an uninterrupted run.
#[test]
fn windows_survive_kill_9() {
    let evs = stream(41, 30_000);
    let mk = || {
        let d = tempfile::tempdir().unwrap();
        write_input(d.path(), &evs, true);
        std::fs::write(
            d.path().join("p.toml"),
            window_toml(Kind::Sliding(60, 20), 8, 15, true, "every = \"15ms\""),
        )
        .unwrap();
        d
    };
    let reference = mk();
    let o = run(reference.path(), &["run", "-q", "p.toml"]);
    assert_eq!(o.status.code(), Some(0));
    let crash = mk();
    let mut r = Rng(99);
    let mut kills = 0;
    for _ in 0..40 {
        let mut bg = spawn_at(
            crash.path(),
            "killed",
            &["resume", "-q", "--or-start", "p.toml"],
            Spawn::default(),
        );
        std::thread::sleep(std::time::Duration::from_millis(30 + r.below(150)));
        if bg.kill9() == 0 {
            break;
        }
        kills += 1;
        if kills >= 6 {
            break;
        }
    }
    let o = run(crash.path(), &["resume", "-q", "--or-start", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in ["out/w.jsonl", "out/late.jsonl"] {
        let a = std::fs::read(reference.path().join(f)).unwrap();
        let b = std::fs::read(crash.path().join(f)).unwrap();
        assert!(
            a == b,
            "{f} differs after {kills} kills ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
}

#[test]
fn dedup_by_event_time_and_by_record_count() {
    let d = tempfile::tempdir().unwrap();
    let rows = [
        (0, "a"),
        (5, "a"),
        (9, "b"),
        (10, "a"),
        (11, "a"),
        (30, "b"),
        (31, "b"),
    ];
    let mut s = String::new();
    for (t, k) in rows {
        s.push_str(&format!("{{\"ts\":{t},\"k\":\"{k}\"}}\n"));
    }
    std::fs::write(d.path().join("in.jsonl"), s).unwrap();
    std::fs::write(
        d.path().join("p.toml"),
        r#"[checkpoint]
every = "off"
[sources.in]
type = "file"
path = "in.jsonl"
[transforms.by_time]
type = "dedup"
inputs = ["in"]
key = ".k"
time = ".ts"
time_unit = "s"
ttl = "10s"
[transforms.by_count]
type = "dedup"
inputs = ["in"]
key = ".k"
ttl = 3
[sinks.t]
type = "file"
inputs = ["by_time"]
path = "t.jsonl"
[sinks.c]
type = "file"
inputs = ["by_count"]
path = "c.jsonl"
"#,
    )
    .unwrap();
    let o = run(d.path(), &["run", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // a kept at 0; 5 dup; 10 kept (10-0 >= 10); 11 dup. b kept at 9; 30 kept; 31 dup.
    assert_eq!(
        std::fs::read_to_string(d.path().join("t.jsonl")).unwrap(),
        "{\"ts\":0,\"k\":\"a\"}\n{\"ts\":9,\"k\":\"b\"}\n{\"ts\":10,\"k\":\"a\"}\n{\"ts\":30,\"k\":\"b\"}\n"
    );
    // By count (records 1..7): a@1 kept, a@2 dup, b@3 kept, a@4 kept (4-1>=3), a@5 dup,
    // b@6 kept (6-3>=3), b@7 dup.
    assert_eq!(
        std::fs::read_to_string(d.path().join("c.jsonl")).unwrap(),
        "{\"ts\":0,\"k\":\"a\"}\n{\"ts\":9,\"k\":\"b\"}\n{\"ts\":10,\"k\":\"a\"}\n{\"ts\":30,\"k\":\"b\"}\n"
    );
}

#[test]
fn state_ttl_drops_idle_keys_by_event_time() {
    let d = tempfile::tempdir().unwrap();
    let rows = [(0, "a"), (1, "b"), (50, "a"), (200, "a"), (201, "b")];
    let mut s = String::new();
    for (t, k) in rows {
        s.push_str(&format!("{{\"ts\":{t},\"k\":\"{k}\"}}\n"));
    }
    std::fs::write(d.path().join("in.jsonl"), s).unwrap();
    std::fs::write(
        d.path().join("p.toml"),
        r#"[checkpoint]
every = "off"
[sources.in]
type = "file"
path = "in.jsonl"
[transforms.agg]
type = "aggregate"
inputs = ["in"]
key = ".k"
aggs = { n = "count" }
emit = "updates"
state_ttl = "100s"
time = ".ts"
[sinks.o]
type = "file"
inputs = ["agg"]
path = "o.jsonl"
"#,
    )
    .unwrap();
    let o = run(d.path(), &["run", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // a: 1, 2 (50-0 <= 100), then at 200 idle 150 > 100: starts again at 1; b likewise.
    assert_eq!(
        std::fs::read_to_string(d.path().join("o.jsonl")).unwrap(),
        "{\"key\":\"a\",\"n\":1}\n{\"key\":\"b\",\"n\":1}\n{\"key\":\"a\",\"n\":2}\n{\"key\":\"a\",\"n\":1}\n{\"key\":\"b\",\"n\":1}\n"
    );
}

#[test]
fn invalid_window_settings_are_reported_together() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.toml"),
        r#"[sources.in]
type = "file"
path = "in.jsonl"
[transforms.w1]
type = "window"
inputs = ["in"]
time = ".ts"
size = "1m"
gap = "10s"
aggs = { n = "count" }
[transforms.w2]
type = "window"
inputs = ["in"]
time = ".ts"
size = "0s"
aggs = { window_start = "count" }
[transforms.d]
type = "dedup"
inputs = ["in"]
key = ".k"
ttl = "10m"
[sinks.o]
type = "file"
inputs = ["w1", "w2", "d"]
path = "o.jsonl"
"#,
    )
    .unwrap();
    let o = run(d.path(), &["validate", "p.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("node 'w1'") && err.contains("`size` (tumbling)"),
        "{err}"
    );
    assert!(
        err.contains("node 'w2'") && err.contains("`size` must be longer than 0"),
        "{err}"
    );
    assert!(err.contains("may not be called `window_start`"), "{err}");
    assert!(
        err.contains("node 'd'") && err.contains("counts records"),
        "{err}"
    );
}
