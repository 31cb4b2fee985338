#!/usr/bin/env bash
# Crash test: run a pipeline with fan-out, a keyed aggregate, two file sinks and a dead-letter
# file over a few hundred thousand records; kill it with SIGKILL at seeded random moments,
# resume until it finishes, corrupt the newest checkpoint once on the way, and compare every
# output byte for byte with an uninterrupted run.
#
#   scripts/crashtest.sh [--quick] [--seed N] [--records N] [--kills N]
set -euo pipefail
cd "$(dirname "$0")/.."

seed=42; records=1000000; kills=25; profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) records=100000; kills=8; profile=debug ;;
    --seed) seed=$2; shift ;;
    --records) records=$2; shift ;;
    --kills) kills=$2; shift ;;
    *) echo "usage: $0 [--quick] [--seed N] [--records N] [--kills N]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$profile" = release ]; then cargo build --release -q; W=$PWD/target/release/weir
else cargo build -q; W=$PWD/target/debug/weir; fi

# Two parse workers on any machine, so the decode pool and folding are what get killed.
export WEIR_PARSE_THREADS="${WEIR_PARSE_THREADS:-2}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/gen_events.py "$records" --seed "$seed" --keys 5000 > "$tmp/events.jsonl"
# A clean copy for two more sources whose only consumers are a count-and-sum aggregate and a
# tumbling window of the same, which the parse workers fold (a bad line would stop the folding
# at once).
cp "$tmp/events.jsonl" "$tmp/clean.jsonl"
# Some bad lines, so the dead-letter file takes part.
awk 'NR % 9973 == 0 { print "{broken json" } { print }' "$tmp/events.jsonl" > "$tmp/events2.jsonl"
mv "$tmp/events2.jsonl" "$tmp/events.jsonl"

for d in ref crash; do
  mkdir -p "$tmp/$d"
  cat > "$tmp/$d/p.toml" <<TOML
name = "crashtest"
[checkpoint]
every = "10ms"
retain = 3

[sources.ev]
type = "file"
path = "$tmp/events.jsonl"
on_error = "dead_letter"
dead_letter = "out/bad.jsonl"

[transforms.errors]
type = "filter"
inputs = ["ev"]
expr = ".status >= 400"

[transforms.slim]
type = "map"
inputs = ["errors"]
expr = "{ts, user, path, status, kb: (.bytes / 1024 | floor)}"

[transforms.per_user]
type = "aggregate"
inputs = ["ev"]
key = ".user"
aggs = { n = "count", bytes = "sum(.bytes)", worst = "max(.latency_ms)", paths = "count_distinct(.path)" }

[sinks.errors_out]
type = "file"
inputs = ["slim"]
path = "out/errors.jsonl"

[sinks.users_out]
type = "file"
inputs = ["per_user"]
path = "out/users.csv"

[sources.clean]
type = "file"
path = "$tmp/clean.jsonl"

[transforms.per_user_folded]
type = "aggregate"
inputs = ["clean"]
key = ".user"
aggs = { n = "count", bytes = "sum(.bytes)" }

[sinks.folded_out]
type = "file"
inputs = ["per_user_folded"]
path = "out/folded.csv"

[sources.clean_w]
type = "file"
path = "$tmp/clean.jsonl"

[transforms.per_minute_folded]
type = "window"
inputs = ["clean_w"]
key = ".path"
time = ".ts"
size = "1m"
out_of_orderness = "10s"
aggs = { n = "count", bytes = "sum(.bytes)" }

[sinks.window_out]
type = "file"
inputs = ["per_minute_folded"]
path = "out/folded_window.jsonl"
TOML
done

echo "crashtest: $records records, up to $kills kills, seed $seed ($profile build)"
t0=$(date +%s.%N)
"$W" run -q "$tmp/ref/p.toml"
t1=$(date +%s.%N)
ref_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }')
echo "crashtest: uninterrupted run took ${ref_ms} ms"
if [ "$("$W" inspect "$tmp/ref/p.toml" | grep -c '"combined"')" != 2 ]; then
  echo "crashtest: the clean sources' lines were not folded by the parse workers"; exit 1
fi

RANDOM=$seed
newest_ckpt() { ls "$tmp/crash/.weir/crashtest/" 2>/dev/null | grep '^ckpt-.*\.weir$' | sort | tail -1 || true; }
survived=0; corrupted=0; runs=0
while :; do
  runs=$((runs + 1))
  set +e
  before=$(newest_ckpt)
  "$W" resume --or-start "$tmp/crash/p.toml" 2>>"$tmp/stderr.log" &
  pid=$!
  if [ "$survived" -lt "$kills" ]; then
    # Kill 15 ms plus a random share of this run's part of an uninterrupted run's time (that
    # time over 1.5 x the kills) into it, so some kills land before a run's first checkpoint
    # and some during one, and all the kills fit in the work: a fixed share of the whole run
    # let a fast release build finish after 10 runs, with 9 of 25 kills landed. Every second
    # run first waits for a checkpoint newer than the one it resumed from: that guarantees
    # progress and checkpoints to corrupt whatever the machine's speed (a slow debug build on
    # a busy CI machine once saw every kill land before any checkpoint completed).
    if [ $((runs % 2)) = 0 ]; then
      while kill -0 "$pid" 2>/dev/null && [ "$(newest_ckpt)" = "$before" ]; do sleep 0.005; done
    fi
    share=$(( ref_ms * 2 / (3 * kills) ))
    [ "$share" -lt 1 ] && share=1
    ms=$(( 15 + RANDOM % share ))
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -9 "$pid" 2>/dev/null
  fi
  { wait "$pid"; } 2>/dev/null; code=$?
  set -e
  if [ "$code" = 0 ]; then break; fi
  if [ "$code" != 137 ]; then
    echo "crashtest: weir exited $code (expected 0 or 137)"; cat "$tmp/stderr.log"; exit 1
  fi
  survived=$((survived + 1))
  # Once, corrupt the newest checkpoint: resume must skip it for the newest valid one.
  if [ "$corrupted" = 0 ] && [ "$survived" -ge 3 ]; then
    newest=$(ls "$tmp/crash/.weir/crashtest/"ckpt-*.weir 2>/dev/null | sort | tail -1 || true)
    if [ -n "$newest" ] && [ "$(ls "$tmp/crash/.weir/crashtest/"ckpt-*.weir | wc -l)" -ge 2 ]; then
      printf '\xff' | dd of="$newest" bs=1 seek=40 conv=notrunc status=none
      corrupted=1
      echo "crashtest: corrupted $(basename "$newest")"
    fi
  fi
  if [ "$runs" -gt $((kills + 40)) ]; then echo "crashtest: no progress"; exit 1; fi
done

fail=0
if [ "$survived" -lt $(( kills / 2 )) ]; then
  echo "crashtest: only $survived kills landed (wanted about $kills): the test proved little"; fail=1
fi
for f in errors.jsonl users.csv bad.jsonl folded.csv folded_window.jsonl; do
  if cmp -s "$tmp/ref/out/$f" "$tmp/crash/out/$f"; then
    echo "crashtest: $f identical ($(wc -l < "$tmp/ref/out/$f") lines)"
  else
    echo "crashtest: $f DIFFERS"; cmp "$tmp/ref/out/$f" "$tmp/crash/out/$f" || true; fail=1
  fi
done
if [ "$corrupted" = 0 ]; then
  echo "crashtest: never had two checkpoints to corrupt one of: the runs did not resume from checkpoints"; fail=1
fi
if [ "$corrupted" = 1 ] && ! grep -q "not valid, skipping" "$tmp/stderr.log"; then
  echo "crashtest: the corrupted checkpoint was not reported"; fail=1
fi
echo "crashtest: survived $survived kills in $runs runs; corrupted checkpoint: $corrupted"
[ "$fail" = 0 ] && echo "crashtest: PASS" || { echo "crashtest: FAIL"; exit 1; }
