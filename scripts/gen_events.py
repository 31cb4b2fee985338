#!/usr/bin/env python3
"""Synthetic JSON-lines access events for benchmarks and tests (stdlib only).

    python3 scripts/gen_events.py N [--seed S] [--keys K] [--rate R] [--disorder D] > events.jsonl

Writes N lines like (about 125 bytes each on average)

    {"ts":"2026-11-01T00:00:00Z","method":"GET","path":"/api/orders","status":200,"bytes":5123,"latency_ms":12.3,"user":"u004521"}

* ts: RFC 3339, UTC, second precision; R events per event-time second (default 100), mostly
  increasing: 10% of events are set back by 1..D seconds (default D = 5), so the disorder is
  bounded by D and a watermark with out_of_orderness >= D sees no late record.
* user: one of K distinct users u000000.. (default 10000), uniform.
* path: one of 8 paths; method: GET/POST/PUT/DELETE; status: 200/301/304/404/500/503 with
  about 15% >= 400; bytes: integer; latency_ms: a number with one decimal (printed as an
  integer when the decimal is 0, as weir and jq print it).
* Deterministic: the same arguments give the same bytes (on any CPython >= 3.6).

Speed: about 2-3 s per million lines; output is written in chunks.
"""
import argparse
import datetime as dt
import random
import sys

PATHS = ["/", "/login", "/logout", "/api/orders", "/api/users", "/api/search",
         "/static/app.js", "/static/app.css"]
PATH_W = [14, 8, 3, 20, 15, 12, 16, 12]
METHODS = ["GET", "POST", "PUT", "DELETE"]
METHOD_W = [80, 15, 3, 2]
STATUSES = [200, 301, 304, 404, 500, 503]
STATUS_W = [75, 5, 5, 9, 4, 2]          # 15% >= 400
CHUNK = 20000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, help="number of events")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keys", type=int, default=10000, help="distinct users (default 10000)")
    ap.add_argument("--rate", type=int, default=100, help="events per event-time second (default 100)")
    ap.add_argument("--disorder", type=int, default=5, help="max seconds an event is set back (default 5)")
    ap.add_argument("--start", default="2026-11-01T00:00:00Z", help="first event time (RFC 3339, UTC)")
    a = ap.parse_args()
    if a.n < 0 or a.keys < 1 or a.rate < 1 or a.disorder < 0:
        ap.error("N >= 0, --keys >= 1, --rate >= 1, --disorder >= 0")

    r = random.Random(a.seed)
    rnd = r.random
    t0 = dt.datetime.strptime(a.start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    # one timestamp string per event-time second, the disorder included (index offset D)
    seconds = a.n // a.rate + 1 + a.disorder
    ts_by_sec = [(t0 + dt.timedelta(seconds=s - a.disorder)).strftime("%Y-%m-%dT%H:%M:%SZ")
                 for s in range(seconds)]
    users = ["u%06d" % i for i in range(a.keys)]
    # latency in tenths of a millisecond, printed canonically: 12.3, 40 (not 40.0)
    lat_str = {}

    def lat(tenths):
        s = lat_str.get(tenths)
        if s is None:
            q, m = divmod(tenths, 10)
            s = lat_str[tenths] = str(q) if m == 0 else "%d.%d" % (q, m)
        return s

    out = sys.stdout.buffer
    D, rate = a.disorder, a.rate
    i = 0
    try:
        while i < a.n:
            k = min(CHUNK, a.n - i)
            paths = r.choices(PATHS, PATH_W, k=k)
            methods = r.choices(METHODS, METHOD_W, k=k)
            statuses = r.choices(STATUSES, STATUS_W, k=k)
            us = r.choices(users, k=k)
            lines = []
            for j in range(k):
                sec = (i + j) // rate + D
                if rnd() < 0.1 and D:
                    sec -= 1 + int(rnd() * D)
                st = statuses[j]
                b = 0 if st in (301, 304) else 120 + int(rnd() * 24000)
                tenths = 5 + int(rnd() * rnd() * 30000) if st >= 500 else 5 + int(rnd() * 1500)
                lines.append('{"ts":"%s","method":"%s","path":"%s","status":%d,"bytes":%d,"latency_ms":%s,"user":"%s"}\n'
                             % (ts_by_sec[sec], methods[j], paths[j], st, b, lat(tenths), us[j]))
            out.write("".join(lines).encode())
            i += k
        out.flush()
    except BrokenPipeError:
        # `gen_events.py 1000000 | head` is fine
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
