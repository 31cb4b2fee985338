#!/bin/sh
# An `exec` sink command (see pipelines/exec_epochs.toml): appends the epoch on stdin to FILE
# unless WEIR_EPOCH was taken in already, so an epoch given again (after a failure or a
# crash) is not appended twice. FILE.epoch holds the last epoch taken in and FILE's length
# after it; a try cut short halfway is cut back to that length and redone whole. flock keeps
# the commands of two runs apart.
set -eu
out=$1
mark="$out.epoch"
exec 9>"$out.lock"
flock 9
last=$(cat "$mark" 2>/dev/null || echo "0 0")
last_epoch=${last% *}
end=${last#* }
if [ "$WEIR_EPOCH" -le "$last_epoch" ]; then
  cat >/dev/null
  exit 0
fi
touch "$out"
truncate -s "$end" "$out"
cat >>"$out"
len=$(wc -c <"$out")
echo "$WEIR_EPOCH $len" >"$mark.tmp" && mv "$mark.tmp" "$mark"
echo "epoch $WEIR_EPOCH: $((len - end)) bytes" >&2
