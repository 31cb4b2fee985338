#!/usr/bin/env bash
# Crash test: run a pipeline with fan-out, a keyed aggregate, two file sinks and a dead-letter
# file over a few hundred thousand records; kill it with SIGKILL at seeded random moments,
# resume until it finishes, corrupt the newest checkpoint once on the way, and compare every
# output byte for byte with an uninterrupted run. Then: the real logrotate in each scheme with
# kill -9s during cron runs (each line once, in order), exactly-once stdout appended to a file
# under kill -9 (byte-identical), and SIGINT/SIGTERM stops of a union feeding a window.
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
if [ "$("$W" inspect "$tmp/ref/p.toml" | grep -c '"folded"')" != 2 ]; then
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

# --- Real logrotate, each scheme: appends, cron runs (at_end = pause) killed at random moments,
# `logrotate -f` between them, then one full run; every line written must come out once, in
# order. The writer recreates the log when logrotate did not (nocreate), as an application does.
LOGROTATE=$(command -v logrotate || echo /usr/sbin/logrotate)
rounds=6; [ "$profile" = debug ] && rounds=3
lr_scheme() { # name, logrotate directives
  local name=$1 conf=$2 d="$tmp/lr-$1" n=0 runs=0 kills=0 landed=0
  mkdir -p "$d/logs"
  printf '%s {\n  missingok\n  notifempty\n  nomail\n%b\n}\n' "$d/logs/app.log" "$conf" > "$d/lr.conf"
  cat > "$d/p.toml" <<TOML
name = "lr"
[checkpoint]
every_records = 700
[sources.log]
type = "file"
path = "logs/app.log*"
format = "lines"
at_end = "pause"
[sinks.out]
type = "file"
inputs = ["log"]
path = "out.jsonl"
TOML
  : > "$d/written.txt"
  write() { # count
    local k=$1 i
    for ((i = 0; i < k; i++)); do n=$((n + 1)); printf 'L%07d GET /api %s\n' "$n" "$((RANDOM % 100000))"; done \
      | tee -a "$d/written.txt" >> "$d/logs/app.log"
  }
  cron_run() { # kill after ms (0: let it finish)
    runs=$((runs + 1))
    (cd "$d" && exec "$W" resume --or-start -q p.toml 2>>"$d/stderr.log") &
    local pid=$!
    if [ "$1" -gt 0 ]; then
      kills=$((kills + 1))
      sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"
      kill -9 "$pid" 2>/dev/null || true
    fi
    set +e; { wait "$pid"; } 2>/dev/null; local code=$?; set -e
    [ "$code" = 137 ] && landed=$((landed + 1))
    if [ "$code" != 0 ] && [ "$code" != 137 ]; then
      echo "crashtest: logrotate $name: weir exited $code"; cat "$d/stderr.log"; return 1
    fi
  }
  write 10; cron_run 0
  for ((r = 0; r < rounds; r++)); do
    write $((50 + RANDOM % 3000)); cron_run $((1 + RANDOM % 40))
    write $((1 + RANDOM % 2000))
    case "$conf" in *dateext*) sleep 1.1 ;; esac
    "$LOGROTATE" -f -s "$d/lr.state" "$d/lr.conf"
    cron_run $((1 + RANDOM % 40))
    write $((RANDOM % 800)); cron_run 0
  done
  write $((1 + RANDOM % 300)); cron_run 0
  sed 's/^{"line":"\(.*\)"}$/\1/' "$d/out.jsonl" > "$d/got.txt"
  local want got
  want=$(wc -l < "$d/written.txt"); got=$(wc -l < "$d/got.txt")
  if cmp -s "$d/written.txt" "$d/got.txt" && ! grep -q "truncated or replaced" "$d/stderr.log"; then
    echo "crashtest: logrotate $name: $runs runs, $kills kills ($landed landed), $want lines written, $got read: identical"
  else
    echo "crashtest: logrotate $name: $runs runs, $kills kills ($landed landed), $want lines written, $got read: DIFFERS"
    cat "$d/stderr.log"; fail=1
  fi
}
if [ -x "$LOGROTATE" ]; then
  lr_scheme create '  create\n  rotate 3'
  lr_scheme copytruncate '  copytruncate\n  rotate 3'
  lr_scheme compress '  nocreate\n  compress\n  rotate 3'
  lr_scheme delaycompress '  create\n  compress\n  delaycompress\n  rotate 3'
  lr_scheme dateext '  create\n  dateext\n  dateformat -%Y%m%d-%s\n  rotate 3'
  lr_scheme rotate1 '  nocreate\n  compress\n  rotate 1'
  lr_scheme copytruncate-compress '  copytruncate\n  compress\n  rotate 2'
else
  echo "crashtest: logrotate not installed (apt-get install logrotate): rotation schemes not tried"; fail=1
fi

# --- Exactly-once stdout appended to one file (`>>`), killed at random moments and once with
# its newest checkpoint corrupted: the file must be byte for byte an uninterrupted run's stdout.
eo_records=200000; [ "$profile" = debug ] && eo_records=40000
for d in eo-ref eo; do
  mkdir -p "$tmp/$d"
  cat > "$tmp/$d/p.toml" <<TOML
name = "eo"
[checkpoint]
every = "20ms"
[sources.g]
type = "generate"
count = $eo_records
rate = $((eo_records * 2)).0
seed = $seed
[sinks.stdout]
type = "file"
inputs = ["g"]
path = "-"
delivery = "exactly-once"
TOML
done
"$W" run -q "$tmp/eo-ref/p.toml" > "$tmp/eo-ref/out.jsonl"
eo_runs=0; eo_kills=0; eo_corrupted=0
while :; do
  eo_runs=$((eo_runs + 1))
  "$W" resume --or-start -q "$tmp/eo/p.toml" >> "$tmp/eo/out.jsonl" 2>>"$tmp/eo/stderr.log" &
  pid=$!
  if [ "$eo_runs" -le 8 ]; then
    sleep "$(awk -v m="$((20 + RANDOM % 120))" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -9 "$pid" 2>/dev/null || true
  fi
  set +e; { wait "$pid"; } 2>/dev/null; code=$?; set -e
  [ "$code" = 0 ] && break
  eo_kills=$((eo_kills + 1))
  if [ "$code" != 137 ]; then echo "crashtest: eo stdout: weir exited $code"; cat "$tmp/eo/stderr.log"; exit 1; fi
  if [ "$eo_corrupted" = 0 ] && [ "$(ls "$tmp/eo/.weir/eo/"ckpt-*.weir 2>/dev/null | wc -l)" -ge 2 ]; then
    newest=$(ls "$tmp/eo/.weir/eo/"ckpt-*.weir | sort | tail -1)
    printf '\xff' | dd of="$newest" bs=1 seek=40 conv=notrunc status=none
    eo_corrupted=1
  fi
  if [ "$eo_runs" -gt 60 ]; then echo "crashtest: eo stdout: no progress"; exit 1; fi
done
want=$(wc -l < "$tmp/eo-ref/out.jsonl"); got=$(wc -l < "$tmp/eo/out.jsonl")
if cmp -s "$tmp/eo-ref/out.jsonl" "$tmp/eo/out.jsonl"; then
  echo "crashtest: exactly-once stdout: $eo_runs runs, $eo_kills kills, corrupted $eo_corrupted, $want lines expected, $got written: identical"
else
  echo "crashtest: exactly-once stdout: $eo_runs runs, $eo_kills kills, corrupted $eo_corrupted, $want lines expected, $got written: DIFFERS"; fail=1
fi

# --- SIGINT and SIGTERM on a union of two sources feeding a sink and a window: each stop
# writes a final checkpoint (exit 130/143), resume goes on; outputs as an uninterrupted run's.
u_records=$records; [ "$profile" = debug ] && u_records=30000
head -n "$u_records" "$tmp/clean.jsonl" > "$tmp/union_a.jsonl"
head -n $((u_records / 2)) "$tmp/clean.jsonl" > "$tmp/half.jsonl"
for d in u-ref u; do
  mkdir -p "$tmp/$d"
  cat > "$tmp/$d/p.toml" <<TOML
name = "u"
[checkpoint]
every = "1h"
[sources.a]
type = "file"
path = "$tmp/union_a.jsonl"
[sources.b]
type = "file"
path = "$tmp/half.jsonl"
[transforms.w]
type = "window"
inputs = ["a", "b"]
key = ".path"
time = ".ts"
size = "1m"
out_of_orderness = "10s"
aggs = { n = "count", bytes = "sum(.bytes)", first = "first(.user)", last = "last(.user)" }
[sinks.all]
type = "file"
inputs = ["a", "b"]
path = "out/all.jsonl"
[sinks.win]
type = "file"
inputs = ["w"]
path = "out/win.jsonl"
TOML
done
t0=$(date +%s.%N); "$W" run -q "$tmp/u-ref/p.toml"; t1=$(date +%s.%N)
u_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }')
u_runs=0; u_stops=0
while :; do
  u_runs=$((u_runs + 1))
  "$W" resume --or-start -q "$tmp/u/p.toml" 2>>"$tmp/u/stderr.log" &
  pid=$!
  if [ "$u_stops" -lt 6 ]; then
    # After the handlers are in place (records flow), a random share of the run.
    while kill -0 "$pid" 2>/dev/null && [ ! -s "$tmp/u/out/all.jsonl" ]; do sleep 0.005; done
    sleep "$(awk -v m="$((RANDOM % (u_ms / 8 + 1)))" 'BEGIN { printf "%.3f", m / 1000 }')"
    sig=INT; [ $((u_runs % 2)) = 0 ] && sig=TERM
    kill -s "$sig" "$pid" 2>/dev/null || true
  fi
  set +e; { wait "$pid"; } 2>/dev/null; code=$?; set -e
  [ "$code" = 0 ] && break
  if [ "$code" != 130 ] && [ "$code" != 143 ]; then echo "crashtest: union: weir exited $code"; cat "$tmp/u/stderr.log"; exit 1; fi
  u_stops=$((u_stops + 1))
  if [ "$u_runs" -gt 30 ]; then echo "crashtest: union: no progress"; exit 1; fi
done
for f in all.jsonl win.jsonl; do
  if cmp -s "$tmp/u-ref/out/$f" "$tmp/u/out/$f"; then
    echo "crashtest: union $f after $u_stops SIGINT/SIGTERM stops in $u_runs runs: identical ($(wc -l < "$tmp/u-ref/out/$f") lines)"
  else
    echo "crashtest: union $f after $u_stops SIGINT/SIGTERM stops in $u_runs runs: DIFFERS"; fail=1
  fi
done
[ "$fail" = 0 ] && echo "crashtest: PASS" || { echo "crashtest: FAIL"; exit 1; }
