#!/usr/bin/env python3
"""Real-shaped benchmark corpora for scripts/bench.sh (stdlib only; seeded, deterministic).

    python3 scripts/gen_corpus.py KIND N [--seed S] [--keys K] > file

KIND is one of:

* k8s: application logs as a Kubernetes log shipper writes them: the app's own fields
  (`time` with milliseconds, `level`, `message`, `status`, `user`, `path`, `bytes`,
  `latency_ms`) beside a nested `kubernetes` object (pod, namespace, host, image, `labels`,
  `annotations`; a third of the pods are shipped with their name and app label only). About
  25% of lines carry non-ASCII text (raw UTF-8, or \\uXXXX), about 16% escapes (a message with
  quotes, newlines, tabs or a stack trace, or a JSON document kept in an annotation); half the
  lines have their keys sorted (as Vector writes them), so `kubernetes` comes first, half in
  the app's order. Lines are about 250 B to 1.8 KB (median ~660 B).
* gh: event records shaped like GitHub's events API (`id`, `type`, `actor`, `repo`,
  `payload`, `public`, `created_at`, sometimes `org`): PushEvent (commits), PullRequestEvent
  (a whole pull request with head/base repositories, labels, a markdown body), IssuesEvent,
  IssueCommentEvent, WatchEvent, CreateEvent. Nested objects hold keys named like the wanted
  ones (`type`, `login`, `name`, `id`); the key order of the top level and of `payload`
  varies from line to line. Lines are about 0.4 to 5.5 KB (median ~2.3 KB); most hold escapes
  (newlines in commit messages and bodies) and about 60% non-ASCII text.
* flat: exactly `scripts/gen_events.py N --seed S --keys K` (the flat access log).
* csv, tsv: the rows of `flat` (same seed, same values) as CSV / TSV with a header and an
  extra last column `agent` (a user agent): in CSV it is quoted when it holds a comma or a
  quote (quotes doubled), and about 1 row in 1000 holds a newline; in TSV it holds quotes and
  commas but never a tab or a newline, and never starts with a quote (TSV has no quoting).

The same arguments give the same bytes (on any CPython >= 3.7). N is a number of records.
"""
import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys

CHUNK = 5000
HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------- shared vocabulary
WORDS = ("order payment user session cache request retry timeout upstream connection "
         "database query index shard replica token header cookie queue worker job batch "
         "checkout cart invoice refund shipment inventory search result page").split()
# non-ASCII phrases (German, French, Japanese, Russian, emoji) written raw in the line
INTL = ["Überweisung fehlgeschlagen für Kunde", "réessai après délai dépassé",
        "注文が見つかりません", "пользователь не найден", "größe überschritten ✓",
        "café crème à la carte", "ошибка соединения с базой", "処理が完了しました 🚀",
        "Straße nicht gefunden", "naïve résumé coöperation"]
PATHS = ["/", "/login", "/logout", "/api/orders", "/api/users", "/api/search",
         "/static/app.js", "/static/app.css"]
STATUSES = [200, 201, 204, 301, 304, 400, 401, 404, 500, 502, 503]
STATUS_W = [60, 5, 4, 3, 6, 4, 2, 7, 5, 2, 2]          # ~22% >= 400


def words(r, n):
    return " ".join(r.choice(WORDS) for _ in range(n))


def hexs(r, n):
    return "%0*x" % (n, r.getrandbits(4 * n))


def dumps(v, ascii_only=False):
    return json.dumps(v, ensure_ascii=ascii_only, separators=(",", ":"))


def obj(pairs, ascii_keys=()):
    """A JSON object from (key, value) pairs in the given order; values under ascii_keys
    are written with \\uXXXX escapes for non-ASCII characters."""
    return "{" + ",".join(dumps(k) + ":" + dumps(v, k in ascii_keys) for k, v in pairs) + "}"


def ts_ms(t0, ms):
    t = t0 + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def ts_s(t0, s):
    return (t0 + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- k8s
APPS = ["orders", "payments", "users", "search", "gateway", "inventory", "shipping",
        "frontend", "auth", "notifications", "billing", "recommendations"]
NAMESPACES = ["shop", "payments", "platform", "search", "edge"]


def k8s_pods(r, n_pods):
    pods = []
    for i in range(n_pods):
        app = APPS[i % len(APPS)]
        ns = NAMESPACES[i % len(NAMESPACES)]
        h = hexs(r, 10)
        ver = "%d.%d.%d" % (1 + i % 3, i % 7, i % 11)
        labels = [("app", app), ("pod-template-hash", h)]
        if i % 3:
            labels += [("tier", r.choice(["backend", "frontend", "data"])), ("version", ver)]
        if i % 5 == 0:
            labels += [("app.kubernetes.io/managed-by", "helm"), ("team", r.choice(["core", "growth", "infra"]))]
        annotations = []
        if i % 2:
            annotations.append(("prometheus.io/scrape", "true"))
            annotations.append(("prometheus.io/port", str(8000 + i % 100)))
        if i % 16 == 9:
            # a JSON document stored in an annotation, as kubectl apply leaves one
            annotations.append(("kubectl.kubernetes.io/last-applied-configuration",
                                dumps({"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {"name": "%s-%s" % (app, h), "labels": {"app": app}},
                                       "spec": {"containers": [{"name": app, "image": "registry.local/%s:%s" % (app, ver)}]}}) + "\n"))
        if i % 3 == 2:
            # a shipper configured to keep the pod's name and app label only
            pods.append({"pod_name": "%s-%s" % (app, hexs(r, 5)), "namespace_name": ns,
                         "labels": {"app": app}})
            continue
        pods.append({
            "pod_name": "%s-%s-%s" % (app, h, hexs(r, 5)),
            "namespace_name": ns,
            "pod_id": "%s-%s-%s-%s-%s" % (hexs(r, 8), hexs(r, 4), hexs(r, 4), hexs(r, 4), hexs(r, 12)),
            "host": "node-%02d.cluster.local" % (i % 24),
            "container_name": app,
            "docker_id": hexs(r, 64),
            "container_image": "registry.local/%s/%s:%s" % (ns, app, ver),
            "labels": dict(labels),
            "annotations": dict(annotations),
        })
    return pods


def k8s(r, n, keys, out):
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    pods = k8s_pods(r, 240)
    users = ["u%06d" % i for i in range(keys)]
    i = 0
    while i < n:
        lines = []
        for j in range(min(CHUNK, n - i)):
            k = i + j
            ms = k * 10 + 5000                       # 100 lines a second
            if r.random() < 0.1:
                ms -= r.randrange(1, 5000)           # at most 5 s out of order
            pod = pods[int(r.random() * len(pods))]
            st = r.choices(STATUSES, STATUS_W)[0]
            path = r.choice(PATHS)
            user = r.choice(users)
            level = "error" if st >= 500 else "warn" if st >= 400 else "info"
            esc = r.random() < 0.12
            intl = r.random() < 0.25
            msg = "%s %s %d %s" % (r.choice(["GET", "GET", "GET", "POST", "PUT"]), path, st, words(r, r.randrange(2, 12)))
            if intl:
                msg += " " + r.choice(INTL)
            ascii_keys = ()
            if esc:
                kind = r.randrange(3)
                if kind == 0:
                    msg += ' after "%s" failed:\n\tretrying (attempt %d)' % (r.choice(WORDS), r.randrange(1, 5))
                elif kind == 1:
                    msg += " payload=" + dumps({"user": user, "note": words(r, 3) + " é"})
                else:
                    msg += "\nTraceback (most recent call last):\n" + "".join(
                        '  File "/app/%s.py", line %d, in %s\n    %s()\n' % (r.choice(WORDS), r.randrange(10, 900), r.choice(WORDS), r.choice(WORDS))
                        for _ in range(r.randrange(2, 12))) + 'ValueError: "%s" ✗' % r.choice(WORDS)
                # half of the escaped lines write non-ASCII as \\uXXXX
                if r.random() < 0.5:
                    ascii_keys = ("message",)
            fields = [("time", ts_ms(t0, ms)), ("level", level), ("message", msg), ("status", st),
                      ("user", user), ("path", path),
                      ("bytes", 0 if st in (204, 304) else 120 + r.randrange(24000)),
                      ("latency_ms", round(0.5 + r.random() * 150, 1)), ("kubernetes", pod)]
            if "docker_id" in pod:
                fields.insert(1, ("stream", "stderr" if st >= 500 else "stdout"))
            if r.random() < 0.5:
                fields.sort()                        # Vector writes keys sorted
            lines.append(obj(fields, ascii_keys))
        out.write(("\n".join(lines) + "\n").encode())
        i += CHUNK


# --------------------------------------------------------------------------- gh
def gh_user(r, login, uid):
    return {"login": login, "id": uid, "node_id": "MDQ6VXNlcj" + hexs(r, 6),
            "avatar_url": "https://avatars.example/u/%d?v=4" % uid, "gravatar_id": "",
            "url": "https://api.example/users/" + login, "html_url": "https://example/" + login,
            "type": "User", "site_admin": False}


def gh_repo_full(r, name, rid, owner):
    return {"id": rid, "node_id": "MDEwOlJlcG9zaXRvcnk" + hexs(r, 6), "name": name.split("/")[1],
            "full_name": name, "private": False, "owner": owner,
            "html_url": "https://example/" + name, "description": words(r, r.randrange(3, 12)),
            "fork": r.random() < 0.1, "url": "https://api.example/repos/" + name,
            "created_at": "2019-0%d-1%dT10:00:00Z" % (r.randrange(1, 10), r.randrange(10)),
            "updated_at": "2026-10-2%dT10:00:00Z" % r.randrange(10), "homepage": None,
            "size": r.randrange(100, 90000), "stargazers_count": r.randrange(5000),
            "watchers_count": r.randrange(5000), "language": r.choice(["Rust", "Go", "Python", "TypeScript", None]),
            "has_issues": True, "forks_count": r.randrange(800), "open_issues_count": r.randrange(300),
            "license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT"},
            "topics": [r.choice(WORDS) for _ in range(r.randrange(0, 5))],
            "default_branch": "main"}


def shuffled(r, pairs):
    pairs = list(pairs)
    r.shuffle(pairs)
    return pairs


def gh(r, n, keys, out):
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    logins = ["%s-%s%d" % (r.choice(["dev", "octo", "alice", "bob", "zoë", "li"]), r.choice(WORDS), i) for i in range(keys)]
    repos = ["%s/%s-%s" % (logins[i * 7 % keys], r.choice(WORDS), r.choice(WORDS)) for i in range(max(1, keys // 5))]
    types = ["PushEvent", "PullRequestEvent", "IssuesEvent", "IssueCommentEvent", "WatchEvent", "CreateEvent"]
    type_w = [40, 20, 10, 15, 10, 5]
    eid = 30000000000
    i = 0
    while i < n:
        lines = []
        for j in range(min(CHUNK, n - i)):
            k = i + j
            sec = k // 20 + 5                        # 20 events a second
            if r.random() < 0.1:
                sec -= r.randrange(1, 6)
            typ = r.choices(types, type_w)[0]
            ai = r.randrange(keys)
            actor = {"id": 1000 + ai, "login": logins[ai], "display_login": logins[ai],
                     "gravatar_id": "", "url": "https://api.example/users/" + logins[ai],
                     "avatar_url": "https://avatars.example/u/%d?" % (1000 + ai)}
            ri = int(r.random() ** 2 * len(repos))
            rname = repos[ri]
            repo = {"id": 500000 + ri, "name": rname, "url": "https://api.example/repos/" + rname}
            if typ == "PushEvent":
                commits = []
                for _ in range(r.randrange(1, 11)):
                    msg = words(r, r.randrange(3, 10))
                    if r.random() < 0.3:
                        msg += "\n\n" + words(r, r.randrange(5, 30)) + '\n\nSigned-off-by: %s <%s@example.org>' % (logins[ai], logins[ai])
                    if r.random() < 0.2:
                        msg += ' (fix "%s" ✓ %s)' % (r.choice(WORDS), r.choice(INTL))
                    commits.append({"sha": hexs(r, 40), "author": {"email": "%s@example.org" % logins[ai], "name": logins[ai]},
                                    "message": msg, "distinct": True, "url": "https://api.example/repos/%s/commits/%s" % (rname, hexs(r, 40))})
                payload = [("repository_id", repo["id"]), ("push_id", r.randrange(10 ** 10)), ("size", len(commits)),
                           ("distinct_size", len(commits)), ("ref", "refs/heads/" + r.choice(["main", "dev", "fix-" + r.choice(WORDS)])),
                           ("head", hexs(r, 40)), ("before", hexs(r, 40)), ("commits", commits)]
            elif typ in ("PullRequestEvent", "IssuesEvent", "IssueCommentEvent"):
                ui = r.randrange(keys)
                user = gh_user(r, logins[ui], 1000 + ui)
                number = r.randrange(1, 5000)
                body = "## %s\n\n%s\n\n- [x] %s\n- [ ] `%s`\n" % (words(r, 4), words(r, r.randrange(10, 80)), words(r, 5), r.choice(WORDS))
                if r.random() < 0.3:
                    body += '\n> "%s" — %s\n' % (words(r, 6), r.choice(INTL))
                labels = [{"id": r.randrange(10 ** 9), "name": r.choice(["bug", "enhancement", "good first issue", "docs"]),
                           "color": hexs(r, 6), "default": False} for _ in range(r.randrange(0, 4))]
                item = {"url": "https://api.example/repos/%s/issues/%d" % (rname, number), "id": r.randrange(10 ** 9),
                        "number": number, "state": "open", "title": words(r, r.randrange(3, 10)), "user": user,
                        "labels": labels, "locked": False, "comments": r.randrange(30),
                        "created_at": ts_s(t0, max(0, sec - 86400)), "updated_at": ts_s(t0, sec), "body": body}
                action = r.choice(["opened", "closed", "reopened"]) if typ != "IssueCommentEvent" else "created"
                if typ == "PullRequestEvent":
                    owner = gh_user(r, rname.split("/")[0], 1000 + ri)
                    item.update({"merged": False, "additions": r.randrange(2000), "deletions": r.randrange(900),
                                 "changed_files": r.randrange(1, 60),
                                 "head": {"label": "%s:fix" % user["login"], "ref": "fix", "sha": hexs(r, 40), "user": user,
                                          "repo": gh_repo_full(r, rname, repo["id"], owner)},
                                 "base": {"label": "%s:main" % owner["login"], "ref": "main", "sha": hexs(r, 40), "user": owner,
                                          "repo": gh_repo_full(r, rname, repo["id"], owner)}})
                    payload = [("action", action), ("number", number), ("pull_request", item)]
                elif typ == "IssuesEvent":
                    payload = [("action", action), ("issue", item)]
                else:
                    ci = r.randrange(keys)
                    comment = {"id": r.randrange(10 ** 9), "user": gh_user(r, logins[ci], 1000 + ci),
                               "body": words(r, r.randrange(5, 60)) + ("\n\n```\n%s\n```" % words(r, 8) if r.random() < 0.4 else ""),
                               "created_at": ts_s(t0, sec)}
                    payload = [("action", action), ("issue", item), ("comment", comment)]
            elif typ == "WatchEvent":
                payload = [("action", "started")]
            else:
                payload = [("ref", r.choice(["main", "v1.%d.0" % r.randrange(20)])), ("ref_type", r.choice(["branch", "tag"])),
                           ("master_branch", "main"), ("description", words(r, 6)), ("pusher_type", "user")]
            eid += 1 + r.randrange(50)
            fields = [("id", str(eid)), ("type", typ), ("actor", actor), ("repo", repo),
                      ("payload", dict(shuffled(r, payload) if r.random() < 0.5 else payload)),
                      ("public", True), ("created_at", ts_s(t0, sec))]
            if r.random() < 0.3:
                fields.append(("org", {"id": 9000 + ri % 50, "login": "org%d" % (ri % 50), "gravatar_id": "",
                                       "url": "https://api.example/orgs/org%d" % (ri % 50)}))
            if r.random() < 0.5:
                fields = shuffled(r, fields)
            lines.append(obj(fields))
        out.write(("\n".join(lines) + "\n").encode())
        i += CHUNK


# --------------------------------------------------------------------------- flat, csv, tsv
AGENTS = ['Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0', 'curl/8.5.0',
          'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) Safari/605.1.15',
          'python-requests/2.31, "retry"', 'Go-http-client/1.1',
          'bot (compatible; "crawler", +https://example.org/bot)', 'kube-probe/1.30']


def flat_rows(n, seed, keys):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "gen_events.py"), str(n), "--seed", str(seed),
                          "--keys", str(keys)], stdout=subprocess.PIPE)
    for line in p.stdout:
        yield json.loads(line)
    if p.wait() != 0:
        sys.exit("gen_events.py failed")


def table(r, n, seed, keys, out, tsv):
    cols = ["ts", "method", "path", "status", "bytes", "latency_ms", "user", "agent"]
    sep = "\t" if tsv else ","
    buf = [sep.join(cols)]
    for k, e in enumerate(flat_rows(n, seed, keys)):
        agent = r.choice(AGENTS)
        if not tsv and r.random() < 0.001:
            agent += '\nX-Forwarded-For: "10.0.0.%d"' % r.randrange(256)
        cells = [e["ts"], e["method"], e["path"], str(e["status"]), str(e["bytes"]), json.dumps(e["latency_ms"]), e["user"]]
        if not tsv and any(c in agent for c in ',"\n'):
            agent = '"' + agent.replace('"', '""') + '"'
        buf.append(sep.join(cells + [agent]))
        if len(buf) >= CHUNK:
            out.write(("\n".join(buf) + "\n").encode())
            buf = []
    if buf:
        out.write(("\n".join(buf) + "\n").encode())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["k8s", "gh", "flat", "csv", "tsv"])
    ap.add_argument("n", type=int, help="number of records")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keys", type=int, default=10000, help="distinct users (default 10000)")
    a = ap.parse_args()
    if a.n < 0 or a.keys < 1:
        ap.error("N >= 0, --keys >= 1")
    out = sys.stdout.buffer
    r = random.Random("%s-%d" % (a.kind, a.seed))
    try:
        if a.kind == "flat":
            out.flush()
            sys.exit(subprocess.call([sys.executable, os.path.join(HERE, "gen_events.py"), str(a.n),
                                      "--seed", str(a.seed), "--keys", str(a.keys)]))
        {"k8s": lambda: k8s(r, a.n, a.keys, out), "gh": lambda: gh(r, a.n, a.keys, out),
         "csv": lambda: table(r, a.n, a.seed, a.keys, out, False),
         "tsv": lambda: table(r, a.n, a.seed, a.keys, out, True)}[a.kind]()
        out.flush()
    except BrokenPipeError:
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
