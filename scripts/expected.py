#!/usr/bin/env python3
"""Independent reference outputs for the example pipelines (stdlib only).

    python3 scripts/expected.py            # (re)write testdata/expected/*
    python3 scripts/expected.py --check    # exit 1 if testdata/expected/* differ from a fresh computation
    python3 scripts/expected.py --compare out/   # diff weir's outputs (out/<name>) against testdata/expected/

This is a second implementation of the semantics in shared SPEC.md, written without looking at
weir's code, so that the example pipelines under pipelines/ have outputs to check byte for byte.
Conventions it follows (the engine must print the same):

* jsonl: compact JSON (no spaces), keys in construction order, non-ASCII as raw UTF-8, a float with
  an integral value prints as an integer (5, not 5.0), other floats in shortest round-trip form.
* aggregate (emit = "final"): one record per key at end of stream, {"key": k, <agg>: v, ...} with
  the aggs in the order the TOML writes them, sorted by key in jq order (numbers < strings).
  count is an integer; sum keeps integers integral; avg = sum / count in f64.
* csv input: a field matching -?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)? becomes a number.
  csv output: header = the first record's keys, "\\n" line ends, quoting only where needed.
* parse: the named groups (regex order) are added as string fields after the record's fields.
* windows: see simulate_tumbling / simulate_session below (watermark = max event time -
  out_of_orderness, advanced after each record; fire when W >= end, ordered by end, start, key;
  late when end + allowed_lateness <= W on arrival; a late-but-allowed record re-fires its window
  at once; everything still open fires at end of input).
"""
import csv
import datetime as dt
import io
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TD = os.path.join(ROOT, "testdata")
EXP = os.path.join(TD, "expected")


# ---------------------------------------------------------------- values and printing

class Bad(Exception):
    """A bad input record: what on_error handles."""


def fmt_num(x):
    if isinstance(x, bool):
        raise TypeError(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "null"
    if x.is_integer() and abs(x) < 1e17:
        return str(int(x))
    r = repr(x)
    if "e" in r or "inf" in r:
        raise ValueError("float %r would print differently in Rust; keep test values in plain range" % x)
    return r


def to_json(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return fmt_num(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + to_json(x) for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_csv_cell(v):
    s = "" if v is None else v if isinstance(v, str) else to_json(v)
    if any(c in s for c in ',"\n\r'):
        s = '"' + s.replace('"', '""') + '"'
    return s


def jq_key(v):
    """Sort key for jq's order, for the scalars that appear as keys here."""
    if v is None:
        return (0, 0)
    if v is False:
        return (1, 0)
    if v is True:
        return (2, 0)
    if isinstance(v, (int, float)):
        return (3, v)
    if isinstance(v, str):
        # Rust compares strings by bytes (UTF-8), which is code point order, as Python does.
        return (4, v)
    raise TypeError("unsupported key type %r" % (v,))


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


def parse_json_object(raw):
    """raw: one line's bytes without the final newline. Returns a dict or raises Bad."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Bad("invalid UTF-8: %s" % e)
    try:
        v = json.loads(text, parse_constant=_no_constants)
    except ValueError as e:
        raise Bad("invalid JSON: %s" % e)
    if not isinstance(v, dict):
        raise Bad("not a JSON object")
    return v


def read_lines(path):
    """(line number, bytes) for every line, final newline optional, '\\n' stripped."""
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return list(enumerate(parts, 1))


def read_jsonl(path, bad=None):
    """Objects of a jsonl file; blank lines skipped; bad lines go to `bad` (list) or raise."""
    out = []
    for n, raw in read_lines(path):
        if raw == b"":
            continue
        try:
            out.append(parse_json_object(raw))
        except Bad as e:
            if bad is None:
                raise SystemExit("%s:%d: %s" % (path, n, e))
            bad.append((n, str(e)))
    return out


NUM_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def infer(s):
    if NUM_RE.fullmatch(s):
        return int(s) if re.fullmatch(r"-?(0|[1-9][0-9]*)", s) else float(s)
    return s


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return [{h: infer(c) for h, c in zip(header, row)} for row in body]


def write_jsonl(recs):
    return "".join(to_json(r) + "\n" for r in recs)


def write_csv(recs):
    if not recs:
        return ""
    keys = list(recs[0].keys())
    lines = [",".join(to_csv_cell(k) for k in keys)]
    for r in recs:
        lines.append(",".join(to_csv_cell(r.get(k)) for k in keys))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- jq-ish helpers

def field(v, name):
    """jq's .name: null on null, error on anything but an object."""
    if v is None:
        return None
    if isinstance(v, dict):
        return v.get(name)
    raise Bad("cannot index %s with %r" % (type(v).__name__, name))


def num_add(a, b):
    return a + b


class Agg:
    """One aggregate function over a sequence of records, as the TOML spells it."""

    def __init__(self, spec):
        m = re.fullmatch(r"\s*(\w+)\s*(?:\(\s*\.(\w+)\s*\))?\s*", spec)
        if not m:
            raise ValueError(spec)
        self.fn, self.f = m.group(1), m.group(2)

    def run(self, recs):
        if self.fn == "count":
            return len(recs)
        vals = [r.get(self.f) for r in recs]
        if self.fn == "sum":
            acc = 0
            for v in vals:
                acc = num_add(acc, v)
            return acc
        if self.fn == "avg":
            acc = 0
            for v in vals:
                acc = num_add(acc, v)
            return float(acc) / len(vals)
        if self.fn == "max":
            return max(vals, key=jq_key)
        if self.fn == "min":
            return min(vals, key=jq_key)
        if self.fn == "count_distinct":
            return len({to_json(v) for v in vals})
        raise ValueError(self.fn)


def run_aggs(aggs, recs):
    return {name: Agg(spec).run(recs) for name, spec in aggs}


def aggregate_final(recs, key, aggs):
    groups = {}
    order = []
    for r in recs:
        k = key(r)
        kk = to_json(k)
        if kk not in groups:
            groups[kk] = (k, [])
            order.append(kk)
        groups[kk][1].append(r)
    out = []
    for kk in sorted(order, key=lambda x: jq_key(groups[x][0])):
        k, rs = groups[kk]
        o = {"key": k}
        o.update(run_aggs(aggs, rs))
        out.append(o)
    return out


# ---------------------------------------------------------------- event time

def parse_ts(s):
    d = dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp())


def fmt_ts(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


NEG_INF = float("-inf")


def window_record(key, start, end, aggs, recs):
    o = {"key": key, "window_start": fmt_ts(start), "window_end": fmt_ts(end)}
    o.update(run_aggs(aggs, recs))
    return o


def simulate_tumbling(recs, key, size, ooo, lateness, aggs):
    """Returns (output, late, stats)."""
    state = {}  # (start, key json) -> dict(start, end, key, recs, fired)
    W = NEG_INF
    max_t = NEG_INF
    out, late = [], []
    stats = {"late": 0, "refired": 0}

    def fire(w):
        out.append(window_record(w["key"], w["start"], w["end"], aggs, w["recs"]))
        w["fired"] = True

    for r in recs:
        t, k = parse_ts(r["ts"]), key(r)
        start = t - t % size
        end = start + size
        if end + lateness <= W:
            late.append(r)
            stats["late"] += 1
            continue
        w = state.setdefault((start, to_json(k)), {"start": start, "end": end, "key": k, "recs": [], "fired": False})
        w["recs"].append(r)
        if end <= W:  # its window has already fired: fire again with the new result
            stats["refired"] += 1
            fire(w)
        max_t = max(max_t, t)
        W = max_t - ooo
        ready = [w for w in state.values() if not w["fired"] and w["end"] <= W]
        for w in sorted(ready, key=lambda w: (w["end"], w["start"], jq_key(w["key"]))):
            fire(w)
        for sk in [sk for sk, w in state.items() if w["end"] + lateness <= W]:
            del state[sk]
    rest = [w for w in state.values() if not w["fired"]]
    for w in sorted(rest, key=lambda w: (w["end"], w["start"], jq_key(w["key"]))):
        fire(w)
    return out, late, stats


def simulate_session(recs, key, gap, ooo, lateness, aggs):
    """Session windows: a record at t is the window [t, t+gap); overlapping windows of a key merge.

    The test data is built so that the open questions of session semantics do not arise, and
    this function checks that: no two events of a key are exactly `gap` apart (touching
    windows), no record on time overlaps a session that already fired and was dropped, and no
    late record overlaps a session still open (Flink would merge it and call it on time)."""
    assert lateness == 0, "the reference handles allowed_lateness = 0 for sessions"
    open_ = {}    # key json -> list of sessions
    closed = {}   # key json -> list of (start, end) already fired
    W = NEG_INF
    max_t = NEG_INF
    out, late = [], []
    stats = {"late": 0, "merges": 0}
    for r in recs:
        t, k = parse_ts(r["ts"]), key(r)
        kk = to_json(k)
        s, e = t, t + gap
        sess = open_.setdefault(kk, [])
        for x in sess + [{"start": a, "end": b} for a, b in closed.get(kk, [])]:
            assert s != x["end"] and e != x["start"], "touching session windows at %s for %s" % (r["ts"], k)
        if e + lateness <= W:
            assert not any(x["start"] < e and s < x["end"] for x in sess), "late record overlaps an open session"
            late.append(r)
            stats["late"] += 1
            continue
        assert not any(a < e and s < b for a, b in closed.get(kk, [])), "record overlaps a fired session: %r" % r
        hit = [x for x in sess if x["start"] < e and s < x["end"]]
        if len(hit) > 1:
            stats["merges"] += 1
        new = {"start": min([s] + [x["start"] for x in hit]), "end": max([e] + [x["end"] for x in hit]),
               "key": k, "recs": [y for x in hit for y in x["recs"]] + [r]}
        sess[:] = [x for x in sess if x not in hit] + [new]
        max_t = max(max_t, t)
        W = max_t - ooo
        ready = [(x, kk2) for kk2, ss in open_.items() for x in ss if x["end"] <= W]
        for x, kk2 in sorted(ready, key=lambda p: (p[0]["end"], p[0]["start"], jq_key(p[0]["key"]))):
            out.append(window_record(x["key"], x["start"], x["end"], aggs, x["recs"]))
            open_[kk2].remove(x)
            closed.setdefault(kk2, []).append((x["start"], x["end"]))
    rest = [x for ss in open_.values() for x in ss]
    for x in sorted(rest, key=lambda x: (x["end"], x["start"], jq_key(x["key"]))):
        out.append(window_record(x["key"], x["start"], x["end"], aggs, x["recs"]))
    return out, late, stats


# ---------------------------------------------------------------- the pipelines

def access_records():
    recs = []
    for name in sorted(os.listdir(os.path.join(TD, "access"))):
        if name.endswith(".jsonl"):
            recs += read_jsonl(os.path.join(TD, "access", name))
    return recs


def errors_per_path():
    recs = [r for r in access_records() if r["status"] >= 500]
    aggs = [("errors", "count"), ("bytes", "sum(.bytes)"), ("worst_ms", "max(.latency_ms)")]
    return {"errors_per_path.jsonl": write_jsonl(aggregate_final(recs, lambda r: r["path"], aggs))}


def user_totals_csv():
    recs = read_csv(os.path.join(TD, "purchases.csv"))
    mapped = []
    for r in recs:
        r = dict(r)
        r["total"] = r["qty"] * r["price"]
        mapped.append(r)
    aggs = [("orders", "count"), ("spent", "sum(.total)"), ("avg_order", "avg(.total)")]
    return {"user_totals_csv.csv": write_csv(aggregate_final(mapped, lambda r: r["user"], aggs))}


SYSLOG_RE = re.compile(r"^(?P<ts>\S+) (?P<level>[A-Z]+) \[(?P<component>[^\]]+)\] (?P<msg>.*)$")


def parse_syslog():
    out, skipped = [], []
    for n, raw in read_lines(os.path.join(TD, "app.log")):
        line = raw.decode("utf-8")
        rec = {"line": line}
        m = SYSLOG_RE.match(line)
        if not m:
            skipped.append(n)
            continue
        for g in ("ts", "level", "component", "msg"):
            rec[g] = m.group(g)
        if rec["level"] == "ERROR":
            out.append(rec)
    return {"parse_syslog.jsonl": write_jsonl(out),
            "parse_syslog.skipped_lines.txt": "".join("%d\n" % n for n in skipped)}


def stdin_filter():
    recs = read_jsonl(os.path.join(TD, "access", "access-1.jsonl"))
    out = [{"ts": r["ts"], "user": r["user"], "path": r["path"], "status": r["status"]}
           for r in recs if r["status"] >= 400]
    return {"stdin_filter.jsonl": write_jsonl(out)}


def fanout_union():
    union, server = [], []
    for r in access_records():
        if 400 <= r["status"] < 500:
            union.append({"ts": r["ts"], "path": r["path"], "status": r["status"], "kind": "client"})
        if r["status"] >= 500:
            server.append(r)
            union.append({"ts": r["ts"], "path": r["path"], "status": r["status"], "kind": "server"})
    return {"fanout_union.jsonl": write_jsonl(union), "fanout_union.server.jsonl": write_jsonl(server)}


def dead_letter():
    good, bad = [], []
    for n, raw in read_lines(os.path.join(TD, "dirty.jsonl")):
        if raw == b"":
            continue
        try:
            r = parse_json_object(raw)
            good.append({"id": r.get("id"), "name": field(r.get("user"), "name"), "status": r.get("status")})
        except Bad as e:
            bad.append((n, str(e)))
    return {"dead_letter.jsonl": write_jsonl(good),
            "dead_letter.bad_lines.txt": "".join("%d\n" % n for n, _ in bad)}


NGINX_RE = re.compile(r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"')


def nginx_access():
    recs = []
    for n, raw in read_lines(os.path.join(TD, "nginx", "access.log")):
        m = NGINX_RE.match(raw.decode("utf-8"))
        if not m:
            continue  # on_error = "skip"
        t = dt.datetime.strptime(m.group(4), "%d/%b/%Y:%H:%M:%S %z")
        recs.append({"ts": fmt_ts(int(t.timestamp())), "status": int(m.group(6)),
                     "size": None if m.group(7) == "-" else int(m.group(7))})
    aggs = [("requests", "count"), ("bytes", "sum(.size)")]
    out, late, stats = simulate_tumbling(recs, lambda r: "%dxx" % (r["status"] // 100), 60, 30, 0, aggs)
    assert stats["late"] == 0, stats
    return {"nginx_access.jsonl": write_jsonl(out)}


def windows_tumbling():
    aggs = [("n", "count"), ("bytes", "sum(.bytes)"), ("worst_ms", "max(.latency_ms)")]
    out, late, stats = simulate_tumbling(access_records(), lambda r: r["path"], 60, 10, 30, aggs)
    assert stats["late"] >= 3 and stats["refired"] >= 3, stats
    return {"windows_tumbling.jsonl": write_jsonl(out), "windows_tumbling.late.jsonl": write_jsonl(late)}


def session_window():
    aggs = [("clicks", "count"), ("pages", "count_distinct(.page)"), ("dwell_ms", "sum(.dwell_ms)")]
    recs = read_jsonl(os.path.join(TD, "clicks.jsonl"))
    out, late, stats = simulate_session(recs, lambda r: r["user"], 30, 5, 0, aggs)
    assert stats["late"] == 2 and stats["merges"] == 1, stats
    return {"session_window.jsonl": write_jsonl(out), "session_window.late.jsonl": write_jsonl(late)}


ALL = [errors_per_path, user_totals_csv, parse_syslog, stdin_filter, fanout_union, dead_letter,
       windows_tumbling, session_window, nginx_access]


def compute():
    files = {}
    for f in ALL:
        files.update(f())
    return files


def main(argv):
    files = compute()
    if len(argv) >= 1 and argv[0] == "--check":
        bad = 0
        for name, text in sorted(files.items()):
            p = os.path.join(EXP, name)
            if not os.path.exists(p) or open(p, encoding="utf-8").read() != text:
                print("differs: testdata/expected/%s" % name)
                bad += 1
        print("%d files, %d differ" % (len(files), bad))
        return 1 if bad else 0
    if len(argv) >= 2 and argv[0] == "--compare":
        # weir's outputs are named like the expected files (see the pipelines' sink paths)
        bad = 0
        for name in sorted(files):
            if name.endswith(".txt"):
                continue
            p = os.path.join(argv[1], name)
            if not os.path.exists(p):
                print("missing: %s" % p)
                bad += 1
            elif open(p, "rb").read() != files[name].encode("utf-8"):
                print("DIFFERS: %s  (diff %s %s)" % (p, p, os.path.join(EXP, name)))
                bad += 1
            else:
                print("same:    %s" % p)
        return 1 if bad else 0
    os.makedirs(EXP, exist_ok=True)
    for name, text in sorted(files.items()):
        with open(os.path.join(EXP, name), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print("wrote testdata/expected/%s (%d lines)" % (name, text.count("\n")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
