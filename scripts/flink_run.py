#!/usr/bin/env python3
"""Runs Flink SQL scripts written by `weir export flink` on PyFlink's local mini-cluster.

    python scripts/flink_run.py SCRIPT.sql [SCRIPT.sql ...]

Each script runs as `sql-client.sh -f` would run it: its SET statements configure a fresh
TableEnvironment (the runtime mode can only be chosen when one is made), then every other
statement is executed in order, and the final EXECUTE STATEMENT SET is waited for. All scripts
run in this one process, so the JVM starts once (it is most of the time of a small job).

Prints one line per script, "ok NAME" or "FAILED NAME: reason", and exits 1 if any failed.
Needs `apache-flink` (PyFlink) and a Java 17 runtime.
"""
import re
import sys
import time


def statements(text):
    """Splits a script into statements: `;` ends one outside quotes; a whole
    EXECUTE STATEMENT SET ... END; block (END; alone on its line: CASE ... END; may end an
    INSERT inside) is one statement."""
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
    out, cur, quote, i = [], [], None, 0
    depth = 0
    while i < len(text):
        c = text[i]
        cur.append(c)
        if quote:
            if c == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    cur.append(text[i + 1])
                    i += 1
                else:
                    quote = None
        elif c in "'`":
            quote = c
        elif c == ";":
            stmt = "".join(cur).strip()
            head = stmt.upper()
            if head.startswith("EXECUTE STATEMENT SET") and not re.search(r"\n\s*END\s*;$", head):
                pass  # inside the block
            else:
                out.append(stmt[:-1].strip())
                cur = []
        i += 1
    rest = "".join(cur).strip()
    if rest:
        out.append(rest)
    return [s for s in out if s]


SET_RE = re.compile(r"^SET\s+'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)'$", re.S | re.I)


def run(path):
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    with open(path, encoding="utf-8") as f:
        stmts = statements(f.read())
    conf = Configuration()
    rest = []
    for s in stmts:
        m = SET_RE.match(s)
        if m:
            conf.set_string(m.group(1).replace("''", "'"), m.group(2).replace("''", "'"))
        else:
            rest.append(s)
    env = TableEnvironment.create(
        EnvironmentSettings.new_instance().with_configuration(conf).build())
    for s in rest:
        if s.upper().startswith("EXECUTE STATEMENT SET"):
            body = re.sub(r"^EXECUTE\s+STATEMENT\s+SET\s+BEGIN", "", s, flags=re.I)
            body = re.sub(r"END\s*$", "", body.strip(), flags=re.I)
            ss = env.create_statement_set()
            for ins in statements(body):
                ss.add_insert_sql(ins)
            ss.execute().wait()
        else:
            env.execute_sql(s).wait()


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for path in sys.argv[1:]:
        t0 = time.time()
        try:
            run(path)
            print(f"ok {path} ({time.time() - t0:.1f} s)", flush=True)
        except Exception as e:  # report every script, then fail
            failed += 1
            msg = str(e).splitlines()
            # Java exceptions: the first lines and the root cause say what went wrong.
            causes = [l for l in msg if "Exception:" in l or "Error:" in l]
            print(f"FAILED {path}: {' | '.join((msg[:2] + causes[-3:]))[:3000]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
