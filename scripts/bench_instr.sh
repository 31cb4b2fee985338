#!/usr/bin/env bash
# Instructions, not seconds: J1, J2 and J3 of scripts/bench.sh (the same expressions, run by
# `weir do`, J3 with bench.sh's out_of_orderness) under `valgrind --tool=callgrind`, all threads summed, on small corpora of
# scripts/gen_corpus.py. A count of instructions is the same from run to run and on a busy
# machine, so a change to the scanner can be judged to a percent where wall time on a
# 0.1-second job cannot. The fixed cost of a run (start-up, compiling the expressions, about
# 10M instructions) is measured on a one-line file and subtracted before the per-byte figure.
#
#   scripts/bench_instr.sh            # flat, k8s, gh (about 6 MB each)
#   CORPORA="k8s" LINES_K8S=20000 scripts/bench_instr.sh
#
# Environment: CORPORA (default "flat k8s gh csv"), WEIR (default target/release/weir, built
# if missing), LINES_FLAT (50000), LINES_K8S (10000), LINES_GH (2500), LINES_CSV (50000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "bench_instr.sh: valgrind is not installed" >&2; exit 2; }
WEIR=${WEIR:-$ROOT/target/release/weir}
[[ -x $WEIR ]] || (cd "$ROOT" && cargo build --release --quiet)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/weir-instr.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

declare -A LINES=([flat]=${LINES_FLAT:-50000} [k8s]=${LINES_K8S:-10000} [gh]=${LINES_GH:-2500} [csv]=${LINES_CSV:-50000})

# The jobs, as in bench.sh: corpus job -> the arguments of `weir do` after the file.
job_args() {
    case $1.$2 in
        flat.J1|csv.J1) printf '%s\n' 'select(.status >= 400) | {user, path, status}' ;;
        k8s.J1) printf '%s\n' 'select(.status >= 400) | {app: .kubernetes.labels.app, user, status}' ;;
        gh.J1) printf '%s\n' 'select(.type == "PullRequestEvent") | {repo: .repo.name, user: .payload.pull_request.user.login, action: .payload.action}' ;;
        flat.J2|csv.J2) printf '%s\n' --by .user --agg count=count --agg 'sum=sum(.bytes)' ;;
        k8s.J2) printf '%s\n' --by .kubernetes.pod_name --agg count=count --agg 'sum=sum(.bytes)' ;;
        gh.J2) printf '%s\n' --by .repo.name --agg count=count --agg 'sum=sum(.payload.size)' ;;
        flat.J3|csv.J3) printf '%s\n' --time .ts --window 1m --by .path --agg count=count ;;
        k8s.J3) printf '%s\n' --time .time --window 1m --by .kubernetes.labels.app --agg count=count ;;
        gh.J3) printf '%s\n' --time .created_at --window 1m --by .type --agg count=count ;;
    esac
}

# Instructions of `weir do ARGS FILE`; J3 runs the pipeline `--print-pipeline` gives with
# `out_of_orderness = "10s"` added, as bench.sh's J3 has (with none, the lines late at a
# minute's turn keep the parse workers from folding the window).
instructions() {   # job file args...
    local job=$1 f=$2
    shift 2
    local cmd=(do "$@" "$f")
    if [[ $job == J3 ]]; then
        "$WEIR" do "$@" "$f" --print-pipeline \
            | sed 's/^size = \(.*\)$/size = \1\nout_of_orderness = "10s"/' >"$TMP/j3.toml"
        rm -rf "$TMP/state"
        cmd=(run -q --state "$TMP/state" "$TMP/j3.toml")
    fi
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$WEIR" "${cmd[@]}" \
        2>"$TMP/cg.err" >/dev/null || { cat "$TMP/cg.err" >&2; exit 1; }
    sed -n 's/.*I *refs: *//p' "$TMP/cg.err" | tr -d ,
}

printf '%-6s %-4s %14s %12s %10s\n' corpus job instructions "per line" "per byte"
for corpus in ${CORPORA:-flat k8s gh csv}; do
    ext=jsonl
    [[ $corpus == csv ]] && ext=csv
    python3 "$ROOT/scripts/gen_corpus.py" "$corpus" "${LINES[$corpus]}" >"$TMP/$corpus.$ext"
    head -n 2 "$TMP/$corpus.$ext" >"$TMP/one.$ext"
    [[ $corpus == csv ]] || head -n 1 "$TMP/$corpus.$ext" >"$TMP/one.$ext"
    bytes=$(stat -c %s "$TMP/$corpus.$ext")
    for job in J1 J2 J3; do
        mapfile -t args < <(job_args "$corpus" "$job")
        total=$(instructions "$job" "$TMP/$corpus.$ext" "${args[@]}")
        fixed=$(instructions "$job" "$TMP/one.$ext" "${args[@]}")
        awk -v c="$corpus" -v j="$job" -v t="$total" -v f="$fixed" -v b="$bytes" -v n="${LINES[$corpus]}" \
            'BEGIN { printf "%-6s %-4s %13.1fM %12.0f %10.2f\n", c, j, t / 1e6, (t - f) / n, (t - f) / b }'
    done
done
