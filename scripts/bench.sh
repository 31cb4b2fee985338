#!/usr/bin/env bash
# bench.sh: weir against jq, jaq, Miller (mlr), mawk and DuckDB on the same jobs and corpora,
# in one run.
#
#   scripts/bench.sh            # N = 1,000,000 flat events (about 125 MB a corpus)
#   scripts/bench.sh --quick    # N = 100,000, one run each, 3 interleaved overhead rounds
#   N=2000000 RUNS=5 CORPORA="flat k8s" scripts/bench.sh
#
# Corpora (scripts/gen_corpus.py, seeded; each about the bytes of N flat events):
#   flat  the flat access log of scripts/gen_events.py (N lines, ~125 B)
#   k8s   Kubernetes-shaped application logs: a nested `kubernetes` object with labels and
#         annotations, ~25% non-ASCII, ~16% escaped, 250 B to 1.8 KB (N/5 lines)
#   gh    GitHub-events-shaped records, 0.4 to 5.5 KB, the wanted fields deep inside and in
#         varying key order (N/20 lines)
#   csv, tsv  the flat rows as CSV / TSV plus a quoted user-agent column (N rows)
# CORPORA (default "flat k8s gh csv tsv") picks and orders them; the checkpoint overhead is
# measured on the first.
#
# Jobs, with the fields each corpus reads (the exact programs are below: jq_prog, mlr_args,
# MAWK_*, duckdb_sql, weir_pipeline):
#   J1  filter and project three fields (flat/csv/tsv: status >= 400 -> user, path, status;
#       k8s: status >= 400 -> .kubernetes.labels.app, user, status; gh: type ==
#       "PullRequestEvent" -> .repo.name, .payload.pull_request.user.login, .payload.action)
#   J2  per-key count and sum (flat: .user, .bytes; k8s: .kubernetes.pod_name, .bytes;
#       gh: .repo.name, .payload.size)
#   J3  1-minute tumbling count per key (event time; weir's window; the peers group by the
#       minute prefix of the time, which is the same result here: the data is at most 5 s out
#       of order and weir's out_of_orderness is 10 s)
#
# jq and jaq run on the JSON corpora only; mawk on flat, k8s, csv and tsv (on gh the wanted
# keys also name nested fields, in any order, which its regexes cannot tell apart).
# jaq runs jq's filters unchanged (-c, or -n with `reduce inputs` for J2/J3).
# DuckDB runs SQL over read_json(..., format='newline_delimited', columns={...}) with explicit
# columns: only the fields the job reads (nested ones as STRUCTs naming only the wanted keys),
# VARCHAR/BIGINT, no type auto-detection (J1 with 1M flat events, 2 cores: 0.40 s this way,
# 0.6 s with all seven columns, 0.7 s auto-detected; the fastest is used, as the targets are
# "faster than DuckDB"); CSV and TSV through read_csv with the eight columns declared. It
# writes JSON lines with COPY ... TO (FORMAT json). J1 keeps input order
# (preserve_insertion_order, DuckDB's default, set explicitly). DuckDB uses all cores
# (threads = nproc), as weir does.
# DuckDB is run through whichever starts fastest, since start-up counts in the wall time:
#   1. the DuckDB CLI binary: the one bundled in PyPI's duckdb-cli package (its `duckdb` script on
#      PATH is a Python wrapper that costs ~40 ms more, so the binary inside is run directly),
#      or a `duckdb` on PATH; starts in ~10 ms;
#   2. else the Python package (python3 + import duckdb: ~150 ms before the query starts; with
#      1M events the Python duckdb 2.0.0 took ~0.35 s more than the 1.5.6 CLI on J1 and J2).
# DUCKDB=cli or DUCKDB=python forces one of them. A missing CLI is installed with pip
# (python3 -m pip install duckdb-cli) and, failing that, the Python package (pip install duckdb).
#
# weir runs each job twice: with [checkpoint] every = "1s" (row "weir") and every = "off"
# (row "weir-nockpt"). A few percent of drift is still possible between their rows; the
# checkpoint overhead is therefore measured again on the first corpus with the variants
# interleaved (every 1s, off, every 100ms; OVERHEAD_RUNS rounds, default 15), and the verdicts
# use the median of the rounds' ratios, which a drift of the machine's speed cancels out of.
#
# Each run is preceded by an untimed read of its corpus, so that every tool finds the corpus in
# the page cache: a machine that pages out memory left alone for a while (DAMON's reclaim on
# the project's VM, after a minute) otherwise makes the first tool to read a corpus after it
# sat idle read it from disk, and the tools after it find it cached. weir runs first in each
# round, and in a full run on 2026-12-04 its first J1 run (the first read of a corpus written
# minutes before) was the slowest of its three on 4 of 5 corpora (k8s: 0.128 s against 0.074
# and 0.093 s).
#
# Each (corpus, job, tool) runs RUNS times (default 3), round robin (run 1 of every tool, then
# run 2, ...), so all tools meet the same drift; the table shows the median wall time and the
# median peak RSS (/usr/bin/time %M). records/s and MB/s are input records and input bytes per
# wall second. "t/weir" is this row's wall time / weir's wall time for the job: 4.00 means weir
# is 4x as fast as that peer (= weir's throughput / the peer's).
# The outputs of all tools are normalised and compared; a WARNING is printed if they differ.
#
# Below the table, one verdict line per corpus and job, with weir's "weir" row (checkpoints
# every 1s):
#   flat (the first performance issue): J1 >= 10x jq and faster than DuckDB; J2, J3 >= 20x jq
#     and at least DuckDB's speed; the checkpoint overhead (every 1s against off, interleaved
#     runs) <= 3%;
#   k8s, gh (issue 16): J1, J2, J3 >= 1.5x DuckDB, and J1 >= 15x jq;
#   csv, tsv (issue 16): J1, J2, J3 >= 1.5x DuckDB's read_csv;
#   no cliff (issue 16): weir's MB/s on k8s and gh at least flat's / 1.3, per job.
# "n/a" when a row is missing.
#
# Environment: N (flat events), RUNS (default 3; 1 with --quick), OVERHEAD_RUNS (default 15;
# 3 with --quick), SEED (default 42), KEYS (distinct users/actors, default 10000), CORPORA,
# WEIR (a weir binary to use instead of building target/release/weir), NO_INSTALL=1
# (install no missing peer: neither apt-get nor pip), INSTALL_JAQ=1 (cargo install --locked jaq
# if jaq is not on PATH: it compiles for several minutes), DUCKDB=cli|python (see above),
# KEEP=1 (keep the temp dir with data and outputs), TMPDIR (where the temp dir goes),
# TOOLS (a space-separated subset of the tools to run, such as "weir duckdb"; default all).
#
# Peers missing on the machine are installed with apt-get (apt-get update first; jq, mlr, mawk),
# pip (DuckDB) or, with INSTALL_JAQ=1, cargo (jaq); a peer that cannot be installed, or that
# fails, is skipped with a warning and the run goes on. jaq missing without INSTALL_JAQ=1 is
# skipped with a note. /usr/bin/time comes from the Debian package "time". hyperfine is not
# needed: it reports no peak RSS, and RUNS repeats do its job here.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then
    N=${N:-100000} RUNS=${RUNS:-1} OVERHEAD_RUNS=${OVERHEAD_RUNS:-3}
fi
N=${N:-1000000}
RUNS=${RUNS:-3}
OVERHEAD_RUNS=${OVERHEAD_RUNS:-15}
CORPORA=${CORPORA:-flat k8s gh csv tsv}
SEED=${SEED:-42}
KEYS=${KEYS:-10000}

say()  { printf '%s\n' "$*" >&2; }
WARNINGS=()
warn() { say "WARNING: $*"; WARNINGS+=("$*"); }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weir-bench.XXXXXX")
cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$TMP/out" "$TMP/cmd" "$TMP/log" "$TMP/state" "$TMP/norm"

# ------------------------------------------------------------------ peers
declare -A PKG=([jq]=jq [mlr]=miller [mawk]=mawk [/usr/bin/time]=time)
missing=()
for c in jq mlr mawk /usr/bin/time; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${PKG[$c]}")
done
if ((${#missing[@]})); then
    if [[ "${NO_INSTALL:-0}" == 1 ]]; then
        warn "not installing missing peers (NO_INSTALL=1): ${missing[*]}"
    else
        SUDO=()
        if [[ $(id -u) != 0 ]]; then
            if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else warn "not root and no sudo: cannot install ${missing[*]}"; fi
        fi
        say "installing missing peers: ${missing[*]}"
        "${SUDO[@]}" apt-get update -qq >"$TMP/log/apt-update.log" 2>&1 || warn "apt-get update failed (see the log with KEEP=1)"
        for p in "${missing[@]}"; do
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >"$TMP/log/apt-$p.log" 2>&1 \
                || warn "could not install $p: skipping it"
        done
    fi
fi
HAVE_TIME=0
[[ -x /usr/bin/time ]] && HAVE_TIME=1
((HAVE_TIME)) || warn "/usr/bin/time missing: peak RSS not measured"
command -v python3 >/dev/null 2>&1 || { say "bench.sh: python3 is needed for the data generator"; exit 2; }
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PY=python3   # not pyenv's shim
SKIPPED=()   # peers not run, with the reason; printed under the table

# DuckDB: DUCKDB_MODE=cli (DUCKDB_BIN) or python ($PY + import duckdb), or "" when missing
DUCKDB_MODE="" DUCKDB_BIN="" DUCKDB_VERSION=""
duckdb_cli_ok() { [[ -n $1 && -x $1 ]] && "$1" -no-init -batch -bail -c 'SELECT 1' </dev/null >/dev/null 2>&1; }
find_duckdb_cli() {
    local b
    # the binary inside PyPI's duckdb-cli, then a duckdb on PATH (which may be that wrapper)
    b=$("$PY" -c 'import duckdb_cli, os; print(os.path.join(os.path.dirname(duckdb_cli.__file__), "duckdb"))' 2>/dev/null)
    duckdb_cli_ok "$b" || b=$(command -v duckdb 2>/dev/null)
    duckdb_cli_ok "$b" || return 1
    DUCKDB_MODE=cli DUCKDB_BIN=$b
    DUCKDB_VERSION="duckdb $("$b" -version 2>/dev/null | head -n 1) (CLI)"
}
find_duckdb_python() {
    "$PY" -c 'import duckdb' >/dev/null 2>&1 || return 1
    DUCKDB_MODE=python
    DUCKDB_VERSION="duckdb $("$PY" -c 'import duckdb; print(duckdb.__version__)') (Python)"
}
pip_install() {   # package
    [[ "${NO_INSTALL:-0}" == 1 ]] && return 1
    say "installing $1 with pip ..."
    "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$1" >"$TMP/log/pip-$1.log" 2>&1 \
        || "$PY" -m pip install --quiet --disable-pip-version-check "$1" >>"$TMP/log/pip-$1.log" 2>&1 \
        || { say "note: pip install $1 failed: $(tail -n 1 "$TMP/log/pip-$1.log")"; return 1; }
    hash -r
}
# the CLI first (fastest start), installed if missing; else the Python package, installed if missing
if [[ ${DUCKDB:-} != python ]]; then
    find_duckdb_cli || { pip_install duckdb-cli && find_duckdb_cli; }
fi
if [[ -z $DUCKDB_MODE && ${DUCKDB:-} != cli ]]; then
    find_duckdb_python || { pip_install duckdb && find_duckdb_python; }
fi
if [[ -z $DUCKDB_MODE ]]; then
    if [[ "${NO_INSTALL:-0}" == 1 ]]; then
        warn "DuckDB${DUCKDB:+ ($DUCKDB)} not found and NO_INSTALL=1: DuckDB skipped"
    else
        warn "DuckDB${DUCKDB:+ ($DUCKDB)} not found and could not be installed with pip: DuckDB skipped"
    fi
fi
[[ -n $DUCKDB_MODE ]] || SKIPPED+=("duckdb: not available")

# jaq: on PATH, or cargo install --locked jaq with INSTALL_JAQ=1
JAQ=$(command -v jaq 2>/dev/null)
if [[ -z $JAQ ]]; then
    if [[ "${INSTALL_JAQ:-0}" == 1 && "${NO_INSTALL:-0}" != 1 ]]; then
        if command -v cargo >/dev/null 2>&1; then
            say "installing jaq (cargo install --locked jaq; several minutes) ..."
            if cargo install --locked jaq >"$TMP/log/cargo-jaq.log" 2>&1; then
                JAQ=$(command -v jaq 2>/dev/null || echo "${CARGO_HOME:-$HOME/.cargo}/bin/jaq")
                [[ -x $JAQ ]] || JAQ=""
            fi
            [[ -n $JAQ ]] || warn "cargo install --locked jaq failed: jaq skipped ($(tail -n 2 "$TMP/log/cargo-jaq.log" | tr '\n' ' '))"
        else
            warn "INSTALL_JAQ=1 but no cargo: jaq skipped"
        fi
    else
        say "note: jaq is not on PATH: skipped (INSTALL_JAQ=1 runs cargo install --locked jaq, several minutes)"
    fi
    [[ -n $JAQ ]] || SKIPPED+=("jaq: not on PATH (INSTALL_JAQ=1 to cargo install it)")
fi

# ------------------------------------------------------------------ weir
if [[ -n "${WEIR:-}" ]]; then
    [[ -x "$WEIR" ]] || { warn "WEIR=$WEIR is not executable: weir skipped"; WEIR=""; }
else
    say "building weir (cargo build --release) ..."
    if (cd "$ROOT" && cargo build --release --quiet) >"$TMP/log/build.log" 2>&1 && [[ -x "$ROOT/target/release/weir" ]]; then
        WEIR="$ROOT/target/release/weir"
    else
        warn "cargo build --release failed: weir skipped ($(tail -n 3 "$TMP/log/build.log" | tr '\n' ' '))"
        WEIR=""
    fi
fi

# ------------------------------------------------------------------ data
# One file per corpus, sized to about the same bytes (N flat events, about 125 MB at 1M): k8s
# lines average ~650 B, gh lines ~2.5 KB.
declare -A DATA NREC BYTES
corpus_n() {   # corpus -> record count
    case $1 in
        flat|csv|tsv) echo "$N" ;;
        k8s) echo $((N / 5)) ;;
        gh) echo $((N / 20)) ;;
    esac
}
for corpus in $CORPORA; do
    case $corpus in
        flat) DATA[$corpus]="$TMP/flat.jsonl" ;;
        k8s|gh) DATA[$corpus]="$TMP/$corpus.jsonl" ;;
        csv) DATA[$corpus]="$TMP/flat.csv" ;;
        tsv) DATA[$corpus]="$TMP/flat.tsv" ;;
        *) say "bench.sh: unknown corpus '$corpus' in CORPORA (flat k8s gh csv tsv)"; exit 2 ;;
    esac
    NREC[$corpus]=$(corpus_n "$corpus")
    say "generating $corpus: ${NREC[$corpus]} records (seed $SEED, $KEYS keys) ..."
    python3 "$ROOT/scripts/gen_corpus.py" "$corpus" "${NREC[$corpus]}" --seed "$SEED" --keys "$KEYS" >"${DATA[$corpus]}" \
        || { say "gen_corpus.py $corpus failed"; exit 1; }
    BYTES[$corpus]=$(stat -c %s "${DATA[$corpus]}")
done

# ------------------------------------------------------------------ the jobs, per corpus
# What each job reads, per corpus: J1's filter and projection, J2's key and summed value, J3's
# time and key. The same fields for every tool; the columns of the compared outputs are
# J1: the three projected fields in order; J2: key, count, sum; J3: minute, key, count.
#   flat, csv, tsv  J1 .status >= 400 -> {user, path, status}; J2 .user, sum .bytes; J3 .ts, .path
#   k8s  J1 .status >= 400 -> {app: .kubernetes.labels.app, user, status};
#        J2 .kubernetes.pod_name, sum .bytes; J3 .time, .kubernetes.labels.app
#   gh   J1 .type == "PullRequestEvent" -> {repo: .repo.name, user:
#        .payload.pull_request.user.login, action: .payload.action};
#        J2 .repo.name, sum .payload.size (absent unless PushEvent: every tool sums it as 0);
#        J3 .created_at, .type
j1_cond() { case $1 in gh) echo '.type == "PullRequestEvent"' ;; *) echo '.status >= 400' ;; esac; }
j1_proj() {
    case $1 in
        k8s) echo '{app: .kubernetes.labels.app, user, status}' ;;
        gh) echo '{repo: .repo.name, user: .payload.pull_request.user.login, action: .payload.action}' ;;
        *) echo '{user, path, status}' ;;
    esac
}
j1_cols() { case $1 in k8s) echo app,user,status ;; gh) echo repo,user,action ;; *) echo user,path,status ;; esac; }
j2_key() { case $1 in k8s) echo .kubernetes.pod_name ;; gh) echo .repo.name ;; *) echo .user ;; esac; }
j2_sum() { case $1 in gh) echo .payload.size ;; *) echo .bytes ;; esac; }
j3_time() { case $1 in k8s) echo .time ;; gh) echo .created_at ;; *) echo .ts ;; esac; }
j3_key() { case $1 in k8s) echo .kubernetes.labels.app ;; gh) echo .type ;; *) echo .path ;; esac; }
is_json() { [[ $1 == flat || $1 == k8s || $1 == gh ]]; }

# weir pipelines: <corpus>-J<n>-<variant>.toml (variant ckpt: checkpoints every 1s; off; fast: 100ms)
weir_pipeline() {   # corpus job variant every
    local corpus=$1 job=$2 variant=$3 every=$4 body last format=jsonl
    [[ $corpus == csv || $corpus == tsv ]] && format=$corpus
    case $job in
        J1) body="[transforms.keep]
type = \"filter\"
inputs = [\"events\"]
expr = '$(j1_cond "$corpus")'

[transforms.project]
type = \"map\"
inputs = [\"keep\"]
expr = '$(j1_proj "$corpus")'
"; last=project ;;
        J2) body="[transforms.per_key]
type = \"aggregate\"
inputs = [\"events\"]
key = '$(j2_key "$corpus")'
aggs = { count = \"count\", sum = 'sum($(j2_sum "$corpus"))' }
emit = \"final\"
"; last=per_key ;;
        J3) body="[transforms.per_minute]
type = \"window\"
inputs = [\"events\"]
key = '$(j3_key "$corpus")'
time = '$(j3_time "$corpus")'
size = \"1m\"
out_of_orderness = \"10s\"
aggs = { count = \"count\" }
"; last=per_minute ;;
    esac
    cat >"$TMP/$corpus-$job-$variant.toml" <<EOF
name = "bench-$corpus-$job-$variant"

[checkpoint]
every = "$every"

[sources.events]
type = "file"
path = "${DATA[$corpus]}"
format = "$format"

$body
[sinks.out]
type = "file"
inputs = ["$last"]
path = "$TMP/out/$corpus.$job.$variant.jsonl"
format = "jsonl"
EOF
}

# jq (and jaq) programs. jq 1.6's update operators (|=, +=) copy the whole accumulator on
# every record (20k events with 10k users: 19 s instead of 0.2 s), so the reductions read the
# old value and assign a new one.
jq_prog() {   # corpus job
    case $2 in
        J1) echo "select($(j1_cond "$1")) | $(j1_proj "$1")" ;;
        J2) echo "reduce inputs as \$e ({}; (\$e | $(j2_key "$1")) as \$k | .[\$k] as \$o | .[\$k] = {count: (\$o.count + 1), sum: (\$o.sum + (\$e | $(j2_sum "$1")))}) | to_entries[] | {key: .key, count: .value.count, sum: .value.sum}" ;;
        J3) echo "reduce inputs as \$e ({}; ((\$e | $(j3_time "$1"))[0:16] + \"\\t\" + (\$e | $(j3_key "$1"))) as \$k | .[\$k] = .[\$k] + 1) | to_entries[] | \"\\(.key)\\t\\(.value)\"" ;;
    esac
}

# Miller: its verbs on flat records (its fastest form); on nested JSON, its DSL (a path is
# $a["b"]["c"]), out-of-stream maps for J2 and J3.
mlr_args() {   # corpus job -> one argument a line
    local corpus=$1 job=$2 io=(--ijsonl --ojsonl)
    [[ $corpus == csv ]] && io=(--icsv --ojsonl)
    [[ $corpus == tsv ]] && io=(--itsv --ojsonl)
    printf '%s\n' "${io[@]}"
    case $corpus.$job in
        flat.J1|csv.J1|tsv.J1) printf '%s\n' filter '$status >= 400' then cut -o -f user,path,status ;;
        flat.J2|csv.J2|tsv.J2) printf '%s\n' stats1 -a count,sum -f bytes -g user ;;
        flat.J3|csv.J3|tsv.J3) printf '%s\n' put -q '@c[substr($ts, 0, 15) . "\t" . $path] += 1; end { for (k, v in @c) { print k . "\t" . v } }' ;;
        k8s.J1) printf '%s\n' filter '$status >= 400' then put '$* = {"app": $kubernetes["labels"]["app"], "user": $user, "status": $status}' ;;
        k8s.J2) printf '%s\n' put -q '@c[$kubernetes["pod_name"]] += 1; @s[$kubernetes["pod_name"]] += $bytes; end { for (k, v in @c) { emit1 {"key": k, "count": v, "sum": @s[k]} } }' ;;
        k8s.J3) printf '%s\n' put -q '@c[substr($time, 0, 15) . "\t" . $kubernetes["labels"]["app"]] += 1; end { for (k, v in @c) { print k . "\t" . v } }' ;;
        gh.J1) printf '%s\n' filter '$type == "PullRequestEvent"' then put '$* = {"repo": $repo["name"], "user": $payload["pull_request"]["user"]["login"], "action": $payload["action"]}' ;;
        gh.J2) printf '%s\n' put -q '@c[$repo["name"]] += 1; @s[$repo["name"]] += $payload["size"]; end { for (k, v in @c) { emit1 {"key": k, "count": v, "sum": @s[k]} } }' ;;
        gh.J3) printf '%s\n' put -q '@c[substr($created_at, 0, 15) . "\t" . $type] += 1; end { for (k, v in @c) { print k . "\t" . v } }' ;;
    esac
}

# mawk: fields pulled out with match() on the JSON corpora (their layouts are known: every
# wanted key occurs once in a line); -F on CSV (the quoted column is the last one; a line that
# does not start with a timestamp is the header or the rest of a quoted newline). Not on gh:
# its wanted keys (type, name, login) also name nested fields in any order, which no regex tells
# apart.
MAWK_flat_J1='{
  if (!match($0, /"status":[0-9]+/)) next
  s = substr($0, RSTART + 9, RLENGTH - 9) + 0
  if (s < 400) next
  match($0, /"user":"[^"]*"/); u = substr($0, RSTART + 7, RLENGTH - 7)
  match($0, /"path":"[^"]*"/); p = substr($0, RSTART + 7, RLENGTH - 7)
  print "{\"user\":" u ",\"path\":" p ",\"status\":" s "}"
}'
MAWK_flat_J2='{
  match($0, /"user":"[^"]*"/); u = substr($0, RSTART + 8, RLENGTH - 9)
  match($0, /"bytes":[0-9]+/); b = substr($0, RSTART + 8, RLENGTH - 8)
  c[u]++; s[u] += b
}
END { for (u in c) printf "{\"key\":\"%s\",\"count\":%d,\"sum\":%.0f}\n", u, c[u], s[u] }'
MAWK_flat_J3='{
  match($0, /"ts":"[^"]*"/); m = substr($0, RSTART + 6, 16)
  match($0, /"path":"[^"]*"/); p = substr($0, RSTART + 8, RLENGTH - 9)
  c[m "\t" p]++
}
END { for (k in c) print k "\t" c[k] }'
MAWK_k8s_J1='{
  if (!match($0, /"status":[0-9]+/)) next
  s = substr($0, RSTART + 9, RLENGTH - 9) + 0
  if (s < 400) next
  match($0, /"app":"[^"]*"/); a = substr($0, RSTART + 6, RLENGTH - 6)
  match($0, /"user":"[^"]*"/); u = substr($0, RSTART + 7, RLENGTH - 7)
  print "{\"app\":" a ",\"user\":" u ",\"status\":" s "}"
}'
MAWK_k8s_J2='{
  match($0, /"pod_name":"[^"]*"/); k = substr($0, RSTART + 12, RLENGTH - 13)
  match($0, /"bytes":[0-9]+/); b = substr($0, RSTART + 8, RLENGTH - 8)
  c[k]++; s[k] += b
}
END { for (k in c) printf "{\"key\":\"%s\",\"count\":%d,\"sum\":%.0f}\n", k, c[k], s[k] }'
MAWK_k8s_J3='{
  match($0, /"time":"[^"]*"/); m = substr($0, RSTART + 8, 16)
  match($0, /"app":"[^"]*"/); k = substr($0, RSTART + 7, RLENGTH - 8)
  c[m "\t" k]++
}
END { for (x in c) print x "\t" c[x] }'
MAWK_table_J1='$1 ~ /^[0-9]/ && $4 >= 400 { print "{\"user\":\"" $7 "\",\"path\":\"" $3 "\",\"status\":" $4 "}" }'
MAWK_table_J2='$1 ~ /^[0-9]/ { c[$7]++; s[$7] += $5 }
END { for (k in c) printf "{\"key\":\"%s\",\"count\":%d,\"sum\":%.0f}\n", k, c[k], s[k] }'
MAWK_table_J3='$1 ~ /^[0-9]/ { c[substr($1, 1, 16) "\t" $3]++ }
END { for (x in c) print x "\t" c[x] }'
mawk_prog() {   # corpus job
    local p=MAWK_$1_$2
    [[ $1 == csv || $1 == tsv ]] && p=MAWK_table_$2
    printf '%s' "${!p}"
}

# DuckDB: explicit columns (only what the job reads; no type detection): the fastest form.
# Nested fields are STRUCT columns naming only the wanted keys. CSV/TSV through read_csv with
# all eight columns declared.
duckdb_sql() {   # corpus job out
    local corpus=$1 job=$2 out=$3 from q
    local csvcols="{'ts': 'VARCHAR', 'method': 'VARCHAR', 'path': 'VARCHAR', 'status': 'BIGINT', 'bytes': 'BIGINT', 'latency_ms': 'DOUBLE', 'user': 'VARCHAR', 'agent': 'VARCHAR'}"
    case $corpus.$job in
        flat.J1) from="columns = {\"user\": 'VARCHAR', path: 'VARCHAR', status: 'BIGINT'}"
                 q='SELECT "user", path, status FROM src WHERE status >= 400' ;;
        flat.J2) from="columns = {\"user\": 'VARCHAR', bytes: 'BIGINT'}"
                 q='SELECT "user" AS key, count(*) AS count, sum(bytes) AS sum FROM src GROUP BY "user"' ;;
        flat.J3) from="columns = {ts: 'VARCHAR', path: 'VARCHAR'}"
                 q='SELECT substr(ts, 1, 16) AS minute, path AS key, count(*) AS count FROM src GROUP BY minute, path' ;;
        k8s.J1) from="columns = {status: 'BIGINT', \"user\": 'VARCHAR', kubernetes: 'STRUCT(labels STRUCT(app VARCHAR))'}"
                q='SELECT kubernetes.labels.app AS app, "user", status FROM src WHERE status >= 400' ;;
        k8s.J2) from="columns = {bytes: 'BIGINT', kubernetes: 'STRUCT(pod_name VARCHAR)'}"
                q='SELECT kubernetes.pod_name AS key, count(*) AS count, sum(bytes) AS sum FROM src GROUP BY key' ;;
        k8s.J3) from="columns = {time: 'VARCHAR', kubernetes: 'STRUCT(labels STRUCT(app VARCHAR))'}"
                q='SELECT substr(time, 1, 16) AS minute, kubernetes.labels.app AS key, count(*) AS count FROM src GROUP BY minute, key' ;;
        gh.J1) from="columns = {type: 'VARCHAR', repo: 'STRUCT(name VARCHAR)', payload: 'STRUCT(action VARCHAR, pull_request STRUCT(\"user\" STRUCT(login VARCHAR)))'}"
               q='SELECT repo.name AS repo, payload.pull_request."user".login AS "user", payload.action AS action FROM src WHERE type = '"'PullRequestEvent'" ;;
        gh.J2) from="columns = {repo: 'STRUCT(name VARCHAR)', payload: 'STRUCT(size BIGINT)'}"
               q='SELECT repo.name AS key, count(*) AS count, sum(payload.size) AS sum FROM src GROUP BY key' ;;
        gh.J3) from="columns = {created_at: 'VARCHAR', type: 'VARCHAR'}"
               q='SELECT substr(created_at, 1, 16) AS minute, type AS key, count(*) AS count FROM src GROUP BY minute, key' ;;
        csv.*|tsv.*)
            case $job in
                J1) q='SELECT "user", path, status FROM src WHERE status >= 400' ;;
                J2) q='SELECT "user" AS key, count(*) AS count, sum(bytes) AS sum FROM src GROUP BY "user"' ;;
                J3) q='SELECT substr(ts, 1, 16) AS minute, path AS key, count(*) AS count FROM src GROUP BY minute, path' ;;
            esac ;;
    esac
    case $corpus in
        csv) from="FROM read_csv('${DATA[$corpus]}', header = true, delim = ',', quote = '\"', escape = '\"', columns = $csvcols)" ;;
        tsv) from="FROM read_csv('${DATA[$corpus]}', header = true, delim = '\t', quote = '', escape = '', columns = $csvcols)" ;;
        *) from="FROM read_json('${DATA[$corpus]}', format = 'newline_delimited', $from)" ;;
    esac
    q=${q/FROM src/$from}
    printf "SET preserve_insertion_order = true;\nSET temp_directory = '%s';\nCOPY (%s) TO '%s' (FORMAT json);\n" \
        "$TMP/duckdb.tmp" "$q" "$out"
}
cat >"$TMP/duckdb_run.py" <<'EOF'
import sys, duckdb
duckdb.connect().execute(open(sys.argv[1]).read())
EOF

# write_cmd CORPUS JOB TOOL: $TMP/cmd/CORPUS.JOB.TOOL.sh execs the tool, writing its output file
write_cmd() {
    local corpus=$1 job=$2 tool=$3 f="$TMP/cmd/$1.$2.$3.sh" out data=${DATA[$1]}
    out=$(out_file "$corpus" "$job" "$tool")
    {
        echo '#!/usr/bin/env bash'
        case $tool in
            weir|weir-nockpt|weir-100ms)
                local variant=ckpt every=1s
                [[ $tool == weir-nockpt ]] && variant=off every=off
                [[ $tool == weir-100ms ]] && variant=fast every=100ms
                weir_pipeline "$corpus" "$job" "$variant" "$every"
                printf 'exec %q run %q --state %q </dev/null >/dev/null\n' \
                    "$WEIR" "$TMP/$corpus-$job-$variant.toml" "$TMP/state/$corpus-$job-$variant" ;;
            jq|jaq)
                local flags=(-c) bin=jq
                [[ $tool == jaq ]] && bin=$JAQ
                [[ $job != J1 ]] && flags=(-n -c)
                [[ $job == J3 ]] && flags=(-n -r)
                printf 'exec %q' "$bin"; printf ' %q' "${flags[@]}" "$(jq_prog "$corpus" "$job")"; printf ' <%q >%q\n' "$data" "$out" ;;
            duckdb)
                duckdb_sql "$corpus" "$job" "$out" >"$TMP/$corpus.$job.duckdb.sql"
                if [[ $DUCKDB_MODE == cli ]]; then
                    printf 'exec %q -no-init -batch -bail -f %q </dev/null >/dev/null\n' "$DUCKDB_BIN" "$TMP/$corpus.$job.duckdb.sql"
                else
                    printf 'exec %q %q %q </dev/null >/dev/null\n' "$PY" "$TMP/duckdb_run.py" "$TMP/$corpus.$job.duckdb.sql"
                fi ;;
            mlr)
                local args=()
                mapfile -t args < <(mlr_args "$corpus" "$job")
                printf 'exec mlr'; printf ' %q' "${args[@]}"; printf ' <%q >%q\n' "$data" "$out" ;;
            mawk)
                local fs=()
                [[ $corpus == csv ]] && fs=(-F ,)
                [[ $corpus == tsv ]] && fs=(-F '\t')
                printf 'exec mawk'; printf ' %q' "${fs[@]}" "$(mawk_prog "$corpus" "$job")"; printf ' <%q >%q\n' "$data" "$out" ;;
        esac
    } >"$f"
}

# the output file of a run (for weir: the sink path in its pipeline)
out_file() {   # corpus job tool
    case $3 in
        weir) echo "$TMP/out/$1.$2.ckpt.jsonl" ;;
        weir-nockpt) echo "$TMP/out/$1.$2.off.jsonl" ;;
        weir-100ms) echo "$TMP/out/$1.$2.fast.jsonl" ;;
        *) echo "$TMP/out/$1.$2.$3.out" ;;
    esac
}

# one timed run: prints "wall_seconds rss_kb" (rss "-" without /usr/bin/time); status = the tool's
time_once() {   # corpus job tool
    local corpus=$1 job=$2 tool=$3 tf="$TMP/log/time" rc t0 t1
    rm -rf "$TMP/state/$corpus-$job-"* "$(out_file "$corpus" "$job" "$tool")"
    # Every run starts with the corpus in the page cache: untimed, a read of it (see the
    # note at the top on the page cache).
    cat "${DATA[$corpus]}" >/dev/null
    t0=$EPOCHREALTIME
    if ((HAVE_TIME)); then
        /usr/bin/time -f '%e %M' -o "$tf" bash "$TMP/cmd/$corpus.$job.$tool.sh" 2>>"$TMP/log/$corpus.$job.$tool.err"
    else
        bash "$TMP/cmd/$corpus.$job.$tool.sh" 2>>"$TMP/log/$corpus.$job.$tool.err"
    fi
    rc=$?
    t1=$EPOCHREALTIME
    local rss=-
    if ((HAVE_TIME)) && [[ -s $tf ]]; then rss=$(tail -n 1 "$tf" | awk '{print $2}'); fi
    awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN { printf "%.3f %s\n", b - a, r }'
    return $rc
}

# normalise an output to sorted (or, for J1, ordered) TSV so that the tools can be compared.
# J1: the named columns in order; J2: key, count, sum (a missing or null sum is 0); J3: minute,
# key, count. Each tool's own names are accepted (weir: key, window_start; Miller's stats1:
# user, bytes_count, bytes_sum; tab-separated text lines as they are).
cat >"$TMP/norm.py" <<'EOF'
import json, sys
job, cols, path = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
def first(o, *names):
    for n in names:
        if n in o:
            return o[n]
    return None
rows = []
with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("{"):
            o = json.loads(line)
            if job == "J1":
                r = tuple(o.get(c) for c in cols)
            elif job == "J2":
                r = (first(o, "key", "user"), first(o, "count", "bytes_count"), first(o, "sum", "bytes_sum") or 0)
            else:
                minute = o["minute"] if "minute" in o else o["window_start"][:16]
                r = (minute, first(o, "key", "path"), o.get("count"))
        else:
            r = tuple(line.split("\t"))
        rows.append("\t".join(str(int(x)) if isinstance(x, float) and x.is_integer() else str(x) for x in r))
if job != "J1":
    rows.sort()
sys.stdout.write("".join(r + "\n" for r in rows))
EOF

ALL_TOOLS=()
[[ -n "$WEIR" ]] && ALL_TOOLS+=(weir weir-nockpt)
command -v jq >/dev/null 2>&1 && ALL_TOOLS+=(jq)
[[ -n $JAQ ]] && ALL_TOOLS+=(jaq)
for t in mlr mawk; do command -v "$t" >/dev/null 2>&1 && ALL_TOOLS+=("$t"); done
[[ -n $DUCKDB_MODE ]] && ALL_TOOLS+=(duckdb)
if [[ -n ${TOOLS:-} ]]; then
    picked=()
    for t in "${ALL_TOOLS[@]}"; do [[ " $TOOLS " == *" $t "* ]] && picked+=("$t"); done
    ALL_TOOLS=("${picked[@]}")
fi
tools_for() {   # corpus -> the tools that run its jobs
    local t
    for t in "${ALL_TOOLS[@]}"; do
        case $t in
            jq|jaq) is_json "$1" || continue ;;
            mawk) [[ $1 == gh ]] && continue ;;
        esac
        printf '%s\n' "$t"
    done
}
for corpus in $CORPORA; do
    is_json "$corpus" || SKIPPED+=("jq, jaq on $corpus: they read JSON only")
    [[ $corpus == gh ]] && command -v mawk >/dev/null 2>&1 && SKIPPED+=("mawk on gh: its wanted keys also name nested fields, in any order")
done

versions=()
[[ -n $WEIR ]] && versions+=("$("$WEIR" --version 2>/dev/null | head -n 1)")
for tool in "${ALL_TOOLS[@]}"; do
    case $tool in
        jq) versions+=("$(jq --version 2>/dev/null)") ;;
        jaq) versions+=("$("$JAQ" --version 2>/dev/null | head -n 1)") ;;
        mlr) versions+=("$(mlr --version 2>/dev/null)") ;;
        mawk) versions+=("$(mawk -W version 2>&1 | head -n 1)") ;;
        duckdb) versions+=("$DUCKDB_VERSION") ;;
    esac
done
say "versions: $(printf '%s; ' "${versions[@]}" | sed 's/; $//')"
say "$(nproc) cores; $RUNS runs each, median shown"

declare -A WALL RSS OK
for corpus in $CORPORA; do
    mapfile -t TOOLS < <(tools_for "$corpus")
    say "input $corpus: ${DATA[$corpus]}: ${NREC[$corpus]} records, ${BYTES[$corpus]} bytes"
    for job in J1 J2 J3; do
        # Round robin: run i of every tool, then run i + 1, so a drift of the machine's speed
        # (other tenants, clocks) falls on all tools alike instead of on whichever ran last.
        declare -A WALLS=() RSSS=() FAILED=()
        for tool in "${TOOLS[@]}"; do write_cmd "$corpus" "$job" "$tool"; done
        for ((i = 1; i <= RUNS; i++)); do
            for tool in "${TOOLS[@]}"; do
                [[ -z "${FAILED[$tool]:-}" ]] || continue
                if ! r=$(time_once "$corpus" "$job" "$tool"); then
                    FAILED[$tool]=1
                    continue
                fi
                WALLS[$tool]+="${r% *} " RSSS[$tool]+="${r#* } "
            done
        done
        key=$corpus.$job
        for tool in "${TOOLS[@]}"; do
            if [[ -n "${FAILED[$tool]:-}" ]]; then
                warn "$key $tool failed: $(tail -n 2 "$TMP/log/$key.$tool.err" 2>/dev/null | tr '\n' ' ')"
                continue
            fi
            read -ra walls <<<"${WALLS[$tool]}"
            read -ra rsss <<<"${RSSS[$tool]}"
            OK[$key.$tool]=1
            WALL[$key.$tool]=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
            RSS[$key.$tool]=$(printf '%s\n' "${rsss[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
            say "$(printf '%-8s %-12s runs: %s' "$key" "$tool" "${walls[*]}")"
        done

        # compare the outputs: against weir's if it ran, else against the first tool that did
        ref=""
        for tool in "${TOOLS[@]}"; do
            [[ -n "${OK[$key.$tool]:-}" ]] || continue
            python3 "$TMP/norm.py" "$job" "$(j1_cols "$corpus")" "$(out_file "$corpus" "$job" "$tool")" >"$TMP/norm/$key.$tool" 2>"$TMP/log/norm.$key.$tool.err" \
                || { warn "$key $tool: output could not be read: $(tail -n 1 "$TMP/log/norm.$key.$tool.err")"; continue; }
            if [[ -z $ref ]]; then
                ref=$tool
            elif ! cmp -s "$TMP/norm/$key.$ref" "$TMP/norm/$key.$tool"; then
                warn "$key: $tool's output differs from $ref's ($(wc -l <"$TMP/norm/$key.$tool") vs $(wc -l <"$TMP/norm/$key.$ref") records; first difference: $(diff "$TMP/norm/$key.$ref" "$TMP/norm/$key.$tool" | grep -m 2 '^[<>]' | tr '\n' ' ')"
            fi
        done
        [[ -n $ref ]] && say "$key: outputs compared with $ref's: $(wc -l <"$TMP/norm/$key.$ref") records"
    done
done

# ------------------------------------------------------------------ checkpoint overhead (flat corpus)
# The table's rows run one tool after another, so machine drift between them is as large as a
# few percent. The overhead is measured again here with the three weir variants interleaved
# (checkpoints every 1s, off, every 100ms), OVERHEAD_RUNS rounds each, on the first corpus
# (flat by default); the verdicts use these medians. Runs shorter than a second take only the
# final checkpoint at 1s; the 100ms variant shows what frequent checkpoints cost.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
OC=${CORPORA%% *}
declare -A OVH
for job in J1 J2 J3; do
    [[ -n "${OK[$OC.$job.weir]:-}" && -n "${OK[$OC.$job.weir-nockpt]:-}" ]] || continue
    write_cmd "$OC" "$job" weir-100ms
    on=() off=() fast=()
    for ((i = 1; i <= OVERHEAD_RUNS; i++)); do
        r=$(time_once "$OC" "$job" weir) && on+=("${r% *}")
        r=$(time_once "$OC" "$job" weir-nockpt) && off+=("${r% *}")
        r=$(time_once "$OC" "$job" weir-100ms) && fast+=("${r% *}")
    done
    ((${#on[@]} == OVERHEAD_RUNS && ${#off[@]} == OVERHEAD_RUNS && ${#fast[@]} == OVERHEAD_RUNS)) \
        || { warn "$job: an interleaved weir run failed"; continue; }
    OVH[$job.on]=$(median "${on[@]}") OVH[$job.off]=$(median "${off[@]}") OVH[$job.fast]=$(median "${fast[@]}")
    # The cost is the median of each round's ratio: runs of one round are seconds apart, so a
    # drift of the machine's speed cancels out of it.
    r1=() r2=()
    for ((i = 0; i < OVERHEAD_RUNS; i++)); do
        r1+=("$(awk -v a="${on[i]}" -v b="${off[i]}" 'BEGIN { print (b > 0 ? (a / b - 1) * 100 : 0) }')")
        r2+=("$(awk -v a="${fast[i]}" -v b="${off[i]}" 'BEGIN { print (b > 0 ? (a / b - 1) * 100 : 0) }')")
    done
    OVH[$job.cost]=$(median "${r1[@]}") OVH[$job.costfast]=$(median "${r2[@]}")
    OVH[$job.noise]=$(printf '%s\n' "${off[@]}" | sort -g | awk '{a[NR]=$1} END { print (a[int((NR+1)/2)] > 0 ? (a[NR] - a[1]) / a[int((NR+1)/2)] * 100 : 0) }')
    say "$(printf '%-3s interleaved (%s): every 1s %s | off %s | every 100ms %s' "$job" "$OC" "${on[*]}" "${off[*]}" "${fast[*]}")"
done

# ------------------------------------------------------------------ what a checkpoint costs, directly
# At these run lengths the machine's noise (the off runs alone spread by 10-50%) can be larger
# than the 3% to be shown, so two direct measures are printed below the overhead lines (the
# verdicts do not use them): the fixed cost of a run with checkpoints (its final checkpoint:
# fsyncs and a rename), timed on the first 1,000 records where little else takes time, 15
# interleaved pairs; and weir's own account of the longest pipeline stall a periodic checkpoint
# caused (--stats, checkpoints every 100ms).
declare -A STALL
FIXED_MS=""
if [[ -n "${OK[$OC.J2.weir]:-}" && -n "${OK[$OC.J2.weir-nockpt]:-}" ]]; then
    head -n 1000 "${DATA[$OC]}" >"$TMP/small.data"
    for v in ckpt off; do
        sed -e "s#${DATA[$OC]}#$TMP/small.data#" -e "s#$TMP/out/#$TMP/out/small-#" "$TMP/$OC-J2-$v.toml" >"$TMP/small-$v.toml"
    done
    diffs=()
    for ((i = 1; i <= 15; i++)); do
        rm -rf "$TMP/state/small-"*
        t0=$EPOCHREALTIME; "$WEIR" run -q "$TMP/small-ckpt.toml" --state "$TMP/state/small-ckpt" </dev/null >/dev/null 2>&1
        t1=$EPOCHREALTIME; "$WEIR" run -q "$TMP/small-off.toml" --state "$TMP/state/small-off" </dev/null >/dev/null 2>&1
        t2=$EPOCHREALTIME
        diffs+=("$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.2f", ((b - a) - (c - b)) * 1000 }')")
    done
    FIXED_MS=$(median "${diffs[@]}")
fi
for job in J1 J2 J3; do
    [[ -n "${OK[$OC.$job.weir]:-}" ]] || continue
    rm -rf "$TMP/state/$OC-$job-fast"
    "$WEIR" run -q "$TMP/$OC-$job-fast.toml" --state "$TMP/state/$OC-$job-fast" --stats "$TMP/log/$job.stats.json" </dev/null >/dev/null 2>&1 || continue
    STALL[$job]=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
n = max(s["nodes"], key=lambda n: n["max_checkpoint_stall_ms"])
print("%d %.1f %s" % (len(s["checkpoints"]), n["max_checkpoint_stall_ms"], n["node"]))
' "$TMP/log/$job.stats.json" 2>/dev/null) || unset "STALL[$job]"
done

# ------------------------------------------------------------------ the table
mbps() { awk -v b="${BYTES[$1]}" -v w="${WALL[$1.$2.weir]:-}" 'BEGIN { if (w == "" || w <= 0) print ""; else printf "%.3f", b / 1e6 / w }'; }
{
    printf '\n%s flat events (--seed %s --keys %s; the other corpora of about the same bytes); median of %s runs; %s cores\n' \
        "$N" "$SEED" "$KEYS" "$RUNS" "$(nproc)"
    printf '%-6s %-4s %-12s %9s %12s %8s %13s %8s\n' corpus job tool "wall s" "records/s" "MB/s" "peak RSS MB" "t/weir"
    for corpus in $CORPORA; do
        mapfile -t TOOLS < <(tools_for "$corpus")
        for job in J1 J2 J3; do
            key=$corpus.$job
            for tool in "${TOOLS[@]}"; do
                [[ -n "${OK[$key.$tool]:-}" ]] || { printf '%-6s %-4s %-12s %9s\n' "$corpus" "$job" "$tool" "failed/skipped"; continue; }
                awk -v c="$corpus" -v job="$job" -v tool="$tool" -v w="${WALL[$key.$tool]}" -v r="${RSS[$key.$tool]}" \
                    -v n="${NREC[$corpus]}" -v b="${BYTES[$corpus]}" -v ww="${WALL[$key.weir]:-}" 'BEGIN {
                    if (w <= 0) w = 0.001
                    rss = (r == "-") ? "-" : sprintf("%.1f", r / 1024)
                    ratio = (ww == "") ? "-" : sprintf("%.2f", w / (ww > 0 ? ww : 0.001))
                    printf "%-6s %-4s %-12s %9.2f %12.0f %8.1f %13s %8s\n", c, job, tool, w, n / w, b / 1e6 / w, rss, ratio
                }'
            done
        done
        printf '%-6s: %s records, %.1f MB\n' "$corpus" "${NREC[$corpus]}" "$(awk -v b="${BYTES[$corpus]}" 'BEGIN {print b / 1e6}')"
    done
    printf '%s\n' 't/weir = wall time / weir wall time (weir with checkpoints every 1s): > 1 means weir is faster.'
    for job in J1 J2 J3; do
        if [[ -n "${OVH[$job.on]:-}" ]]; then
            awk -v j="$OC $job" -v a="${OVH[$job.on]}" -v b="${OVH[$job.off]}" -v f="${OVH[$job.fast]}" -v n="$OVERHEAD_RUNS" \
                -v c1="${OVH[$job.cost]}" -v c2="${OVH[$job.costfast]}" -v z="${OVH[$job.noise]}" \
                'BEGIN { printf "%s: checkpoints cost %+.1f%% every 1s, %+.1f%% every 100ms, against off (median of %d interleaved rounds'"'"' ratios; medians of the runs: 1s %.3f s, 100ms %.3f s, off %.3f s; the off runs alone spread over %.0f%% of their median)\n", j, c1, c2, n, a, f, b, z }'
        fi
    done
    if [[ -n $FIXED_MS ]]; then
        printf 'fixed cost of checkpoints (the final one; first 1,000 records of %s, median of 15 interleaved pairs): %+.2f ms a run' "$OC" "$FIXED_MS"
        for job in J1 J2 J3; do
            [[ -n "${OK[$OC.$job.weir-nockpt]:-}" ]] && awk -v j="$job" -v f="$FIXED_MS" -v w="${WALL[$OC.$job.weir-nockpt]}" \
                'BEGIN { printf "; %s %+.1f%%", j, (w > 0 ? f / (w * 1000) * 100 : 0) }'
        done
        printf '\n'
    fi
    for job in J1 J2 J3; do
        [[ -n "${STALL[$job]:-}" ]] || continue
        read -r n ms node <<<"${STALL[$job]}"
        awk -v j="$OC $job" -v n="$n" -v ms="$ms" -v node="$node" 'BEGIN { printf "%s: %d checkpoints every 100ms; the longest pipeline stall one caused was %.1f ms (node %s): at one a second, at most %.2f%% of the time\n", j, n, ms, node, ms / 10 }'
    done

    # verdicts (weir = the row with checkpoints every 1s)
    verdict() {   # label jqmin ddmin ddop corpus job: jq and DuckDB ratios against their minimums
        local label=$1 jqmin=$2 ddmin=$3 ddop=$4 key=$5.$6 w j="" d="" c=""
        w=${WALL[$key.weir]:-}; [[ -n "${OK[$key.weir]:-}" ]] || w=""
        [[ -n "${OK[$key.jq]:-}" ]] && j=${WALL[$key.jq]}
        [[ -n "${OK[$key.duckdb]:-}" ]] && d=${WALL[$key.duckdb]}
        [[ $5 == "$OC" && $label == first* ]] && c=${OVH[$6.cost]:-none}
        awk -v key="$key" -v w="$w" -v c="$c" -v j="$j" -v d="$d" -v jqmin="$jqmin" -v ddmin="$ddmin" -v ddop="$ddop" 'BEGIN {
            all = "met"; out = ""
            if (w == "") { printf "%s: n/a (no weir run)\n", key; exit }
            if (w <= 0) w = 0.001
            if (jqmin != "") {
                if (j == "") { out = out "; jq/weir n/a"; all = "n/a" }
                else { r = j / w; ok = (r >= jqmin); if (!ok) all = "not met"
                       out = out sprintf("; %.1fx jq (>= %gx: %s)", r, jqmin, ok ? "met" : "not met") }
            }
            if (d == "") { out = out "; duckdb/weir n/a"; if (all == "met") all = "n/a" }
            else { r = d / w; ok = (ddop == ">") ? (r > ddmin) : (r >= ddmin); if (!ok) all = "not met"
                   out = out sprintf("; %.2fx DuckDB (%s %g: %s)", r, ddop, ddmin, ok ? "met" : "not met") }
            if (c == "none") { out = out "; checkpoint overhead n/a"; if (all == "met") all = "n/a" }
            else if (c != "") { o = c + 0; ok = (o <= 3); if (!ok) all = "not met"
                   out = out sprintf("; checkpoint overhead %+.1f%% (<= 3%%: %s)", o, ok ? "met" : "not met") }
            printf "%s: %s%s\n", key, all, out
        }'
    }
    printf '\ntargets (weir row, checkpoints every 1s):\n'
    for corpus in $CORPORA; do
        for job in J1 J2 J3; do
            case $corpus in
                # the first performance issue's targets, on the flat access log
                flat) if [[ $job == J1 ]]; then verdict first 10 1 '>' "$corpus" "$job"; else verdict first 20 1 '>=' "$corpus" "$job"; fi ;;
                # issue 16: real-shaped JSON J1-J3 >= 1.5x DuckDB, J1 >= 15x jq
                k8s|gh) if [[ $job == J1 ]]; then verdict real 15 1.5 '>=' "$corpus" "$job"; else verdict real "" 1.5 '>=' "$corpus" "$job"; fi ;;
                # issue 16: CSV and TSV J1-J3 >= 1.5x DuckDB's read_csv
                csv|tsv) verdict table "" 1.5 '>=' "$corpus" "$job" ;;
            esac
        done
    done
    # issue 16: no cliff: weir's MB/s on a real-shaped corpus at least flat's / 1.3, per job
    if [[ " $CORPORA " == *" flat "* ]]; then
        for corpus in k8s gh; do
            [[ " $CORPORA " == *" $corpus "* ]] || continue
            for job in J1 J2 J3; do
                awk -v c="$corpus" -v job="$job" -v f="$(mbps flat "$job")" -v r="$(mbps "$corpus" "$job")" 'BEGIN {
                    if (f == "" || r == "") { printf "%s.%s: no cliff: n/a\n", c, job; exit }
                    q = f / r
                    printf "%s.%s: no cliff: %s: %.0f MB/s against flat %.0f MB/s (flat / %s = %.2f, <= 1.3)\n", c, job, (q <= 1.3 ? "met" : "not met"), r, f, c, q
                }'
            done
        done
    fi
    if ((${#SKIPPED[@]})); then
        printf '\nnot run:\n'
        printf '  - %s\n' "${SKIPPED[@]}"
    fi
    if ((${#WARNINGS[@]})); then
        printf '\n%d warning(s):\n' "${#WARNINGS[@]}"
        printf '  - %s\n' "${WARNINGS[@]}"
    fi
} | tee "$TMP/results.txt"
[[ "${KEEP:-0}" == 1 ]] && say "results: $TMP/results.txt"
exit 0
