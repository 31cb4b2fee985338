#!/usr/bin/env bash
# bench_parallel.sh: keyed parallelism (`parallelism = N`) measured on bench.sh's J2 and J3.
#
#   scripts/bench_parallel.sh                 # 1M events, N = 1 and 2, 5 rounds
#   N=2000000 RUNS=7 PARS="1 2 4" scripts/bench_parallel.sh
#   CALLGRIND=1 scripts/bench_parallel.sh     # instructions per thread (200k events)
#
# Jobs, on scripts/gen_events.py data (the file source is each job's only input):
#   J2   per-user count and sum of bytes (bench.sh's J2: the parse workers fold it)
#   J3   1-minute tumbling count per path (bench.sh's J3: folded too)
#   J2m  J2 plus max(.latency_ms): not foldable, so the aggregate reads every record
#   J3u  1-minute tumbling count and max(.latency_ms) per user: not foldable, and about
#        4,000 windows fire every minute (the instances build their results)
# Every job runs at each parallelism in PARS, round robin for RUNS rounds (so all meet the
# same drift of a shared machine); the table shows the median wall time and the median CPU
# time (user + system, all threads). Outputs of every parallelism are compared with N = 1's.
#
# With CALLGRIND=1 each job runs once per parallelism under valgrind's callgrind with
# --separate-threads=yes on the first 200,000 events, and the instructions of each thread
# are summed by role: the keyed node's own thread (stage), its workers, the parse workers,
# the source, the sink, the rest (the coordinator). Instruction counts do not depend on the machine's load (checkpoints are
# off there, so that their number does not either).
#
# Environment: N (events, default 1,000,000), RUNS (5), PARS ("1 2"), SEED (42), KEYS (10000),
# WEIR (a weir binary; default target/release/weir, built if missing), KEEP=1 (keep the temp dir).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-1000000}
RUNS=${RUNS:-5}
PARS=${PARS:-"1 2"}
SEED=${SEED:-42}
KEYS=${KEYS:-10000}
WEIR=${WEIR:-$ROOT/target/release/weir}
if [[ ! -x $WEIR ]]; then
    (cd "$ROOT" && cargo build --release) || exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/weir-bench-par.XXXXXX")
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$TMP"' EXIT
say() { echo "bench_parallel: $*" >&2; }

DATA=$TMP/events.jsonl
say "generating $N events (seed $SEED, $KEYS users) ..."
python3 "$ROOT/scripts/gen_events.py" "$N" --seed "$SEED" --keys "$KEYS" >"$DATA" || exit 1
EVERY=1s
if [[ ${CALLGRIND:-0} == 1 ]]; then
    head -200000 "$DATA" >"$TMP/small.jsonl"
    DATA=$TMP/small.jsonl
    # Checkpoints every second of a 50 times slower run would make the counts depend on the
    # machine's speed: none but the final one.
    EVERY=off
fi

node() {   # job parallelism
    case $1 in
        J2) echo 'type = "aggregate"
key = ".user"
aggs = { count = "count", bytes = "sum(.bytes)" }' ;;
        J2m) echo 'type = "aggregate"
key = ".user"
aggs = { count = "count", bytes = "sum(.bytes)", slowest = "max(.latency_ms)" }' ;;
        J3) echo 'type = "window"
key = ".path"
time = ".ts"
size = "1m"
out_of_orderness = "10s"
aggs = { n = "count" }' ;;
        J3u) echo 'type = "window"
key = ".user"
time = ".ts"
size = "1m"
out_of_orderness = "10s"
aggs = { n = "count", slowest = "max(.latency_ms)" }' ;;
    esac
    echo "inputs = [\"events\"]"
    echo "parallelism = $2"
}

mkdir -p "$TMP/out"
for job in J2 J3 J2m J3u; do
    for p in $PARS; do
        cat >"$TMP/$job-$p.toml" <<EOF
[checkpoint]
every = "$EVERY"
dir = "$TMP/state-$job-$p"

[sources.events]
type = "file"
path = "$DATA"

[transforms.keyed]
$(node "$job" "$p")

[sinks.out]
type = "file"
inputs = ["keyed"]
path = "$TMP/out/$job-$p.jsonl"
EOF
    done
done

run() {   # job parallelism -> "wall cpu"
    rm -rf "$TMP/state-$1-$2"
    /usr/bin/time -f "%e %U %S" -o "$TMP/time" "$WEIR" run -q "$TMP/$1-$2.toml" || { say "$1 at $2 failed"; return 1; }
    awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$TMP/time"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

if [[ ${CALLGRIND:-0} == 1 ]]; then
    printf "%-5s %4s  %s\n" job N "instructions (millions) per thread role, 200,000 events"
    for job in J2 J3 J2m J3u; do
        for p in $PARS; do
            rm -rf "$TMP/state-$job-$p" "$TMP"/cg.*
            valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$TMP/cg.%p" \
                "$WEIR" run -q "$TMP/$job-$p.toml" 2>/dev/null || { say "$job at $p failed"; continue; }
            line=$(for f in "$TMP"/cg.*-*; do
                total=$(grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
                ann=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null)
                role=other
                if grep -q 'FileSink as' <<<"$ann"; then role=sink
                elif grep -q 'decode_range\|fold_range\|decode_jsonl' <<<"$ann"; then role=parse
                elif grep -q 'SourceDriver::run' <<<"$ann"; then role=source
                elif grep -q 'as weir::runtime::stage::Operator>::process' <<<"$ann"; then role=stage
                elif grep -q 'Split>::\(evaluate\|apply\)' <<<"$ann"; then role=workers
                fi
                echo "$role $total"
            done | awk '{a[$1] += $2; all += $2} END {printf "stage %d  workers %d  parse %d  source %d  sink %d  other %d  all %d", a["stage"]/1e6, a["workers"]/1e6, a["parse"]/1e6, a["source"]/1e6, a["sink"]/1e6, a["other"]/1e6, all/1e6}')
            printf "%-5s %4s  %s\n" "$job" "$p" "$line"
        done
    done
    exit 0
fi

say "running J2, J3, J2m, J3u at parallelism $PARS, $RUNS rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
declare -A walls cpus
for ((r = 1; r <= RUNS; r++)); do
    for job in J2 J3 J2m J3u; do
        for p in $PARS; do
            read -r w c < <(run "$job" "$p") || continue
            walls[$job-$p]+="$w "
            cpus[$job-$p]+="$c "
        done
    done
done
printf "%-5s %4s %10s %10s   %s\n" job N "wall s" "cpu s" "output"
for job in J2 J3 J2m J3u; do
    for p in $PARS; do
        w=$(tr ' ' '\n' <<<"${walls[$job-$p]:-}" | grep . | median)
        c=$(tr ' ' '\n' <<<"${cpus[$job-$p]:-}" | grep . | median)
        same="same as N=1"
        cmp -s "$TMP/out/$job-1.jsonl" "$TMP/out/$job-$p.jsonl" || same="DIFFERS from N=1"
        printf "%-5s %4s %10s %10s   %s\n" "$job" "$p" "$w" "$c" "$same"
    done
done
say "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); medians of $RUNS runs, $(nproc) cores"
