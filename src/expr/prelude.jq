# weir's definitions on top of jaq's standard library, loaded after it (a later definition
# shadows an earlier one for the code that follows, including the user's expression).
#
# Why: jaq differs from jq where jq is right (range bounds, `index` of null, `gamma`, ...),
# lacks a few jq 1.6 builtins (`@csv`, `tostream`, `IN`, ...), and its generators that can
# run forever (`range`, `repeat`, `while`, `until`, `recurse(f)`) must go through
# `__weir_step`, the native filter that enforces the evaluation limits (see limits.rs). It
# sits where a recursive call stays a tail call, so jaq's tail-call optimisation still runs
# long loops in constant stack.

# Numbers in text as weir prints them everywhere (jq's layout: `1e-07`, `-0`), not as jaq
# does; `join` as jq 1.7 defines it (and weir's native `join` does), on these.
def tojson: __weir_tojson;
def tostring: if type == "string" then . else __weir_tojson end;
def @json: tojson;
def @text: tostring;
def join($x): reduce .[] as $i (null;
    (if . == null then "" else . + $x end)
    + ($i | if type == "boolean" or type == "number" then tojson elif . == null then "" else . end))
  // "";

# Numbers as array indices, as jq 1.7 takes them (jaq refuses a fractional one; the
# translation of paths pipes every index and slice bound through these): an index is
# truncated toward zero (`.[1.7]` is `.[1]`, `.[-1.7]` is `.[-1]`), NaN is out of range, a
# slice's start is rounded down and its end up (`.[1.2:3.7]` is `.[1:4]`).
# Beyond 2^53 (and NaN) an index is out of range whatever the array: clamped there.
def __weir_clamp(f):
  if type != "number" then .
  elif isnan or . <= -9007199254740992 then -9007199254740992
  elif . >= 9007199254740992 then 9007199254740992
  else f end;
def __weir_index: __weir_clamp(if . < 0 then ceil else floor end);
def __weir_start: __weir_clamp(floor);
# An end in (-1, 0) is the array's end (`.[:-0.5]` is `.[:len - 0.5]`, rounded up), not 0.
def __weir_end: __weir_clamp(if . < 0 and . > -1 then null else ceil end);
def __weir_getpath($p): getpath($p);
def getpath($p): __weir_getpath($p | if type == "array" then map(__weir_index) else . end);

# Generators, bounded by the evaluation limits.
def __weir_range($from; $upto; $by): range($from; $upto; $by);
def range($from; $upto; $by):
  if ($from | type) != "number" or ($upto | type) != "number" or ($by | type) != "number"
  then error("Range bounds must be numeric")
  elif $by == 0 then empty
  else __weir_range($from; $upto; $by) | __weir_step end;
def range($from; $upto): range($from; $upto; 1);
def range($upto): range(0; $upto);
def repeat(f): def rec: f, (__weir_step | rec); rec;
def recurse(f): def rec: ., (f | __weir_step | rec); rec;
def recurse(f; cond): def rec: ., (f | select(cond) | __weir_step | rec); rec;
def recurse: recurse(.[]?);
def while(cond; update): def rec: if cond then ., (update | __weir_step | rec) else empty end; rec;
def until(cond; update): def rec: if cond then . else update | __weir_step | rec end; rec;

# As jq: `null | index(1)` is null, `null | bsearch(1)` is -1, `null | combinations` is [].
def __weir_indices($i): indices($i);
def indices($i): if . == null then null else __weir_indices($i) end;
def index($i): indices($i) | if . == null then null else .[0] end;
def rindex($i): indices($i) | if . == null then null else .[-1] end;
def __weir_bsearch($t): bsearch($t);
def bsearch($t): if . == null then -1 else __weir_bsearch($t) end;
def combinations:
  if length == 0 then []
  else .[0][] as $x | (.[1:] | __weir_step | combinations) as $w | [$x] + $w end;
def combinations($n): [limit($n; repeat(.))] | combinations;
# jq's transpose (jaq's indexes objects by position instead of refusing them).
def transpose:
  if type == "object" then error("Cannot index object with number")
  elif . == [] then []
  else . as $in | (map(length) | max) as $max
  | [range(0; $max) as $j | [range(0; $in | length) as $i | $in[$i]
      | if type == "object" then error("Cannot index object with number") else .[$j] end]]
  end;
# jq's `gamma` is the logarithm of the gamma function.
def gamma: lgamma;

# jq's `setpath` (jaq's cannot create a key or an index under null with a computed path, as
# `fromstream` needs).
def setpath($p; $x):
  if ($p | length) == 0 then $x
  else ($p[0] | __weir_index) as $k | $p[1:] as $r
  | if ($k | type) == "string" then
      (if . == null then {} else . end) | . + {($k): (.[$k] | setpath($r; $x))}
    elif ($k | type) == "number" and $k >= 0 then
      (if . == null then [] else . end) as $a | ($k | floor) as $i
      | ($a[$i] | setpath($r; $x)) as $v
      | if $i >= ($a | length) then $a + [range($i - ($a | length)) | null] + [$v]
        else $a[:$i] + [$v] + $a[$i + 1:] end
    else getpath([$k]) as $c | .[$k] = ($c | setpath($r; $x)) end
  end;

# jq 1.6 builtins that jaq lacks.
def leaf_paths: paths(scalars);
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);
def tostream:
  path(def r: (.[]? | __weir_step | r), .; r) as $p
  | getpath($p)
  | reduce path(.[]?) as $q ([$p, .]; [$p + $q]);
def fromstream(f):
  { x: null, e: false } as $init
  | foreach f as $i ($init;
      if .e then $init else . end
      | if $i | length == 2
        then setpath(["e"]; $i[0] | length == 0) | setpath(["x"] + $i[0]; $i[1])
        else setpath(["e"]; $i[0] | length == 1) end;
      if .e then .x else empty end);
def truncate_stream(stream):
  . as $n | null | stream | . as $input
  | if (.[0] | length) > $n then setpath([0]; .[0][$n:]) else empty end;
def @csv:
  if type != "array" then error("\(type) (\(tojson)) cannot be csv-formatted, only an array can be")
  else map(
      if type == "string" then "\"" + (split("\"") | join("\"\"")) + "\""
      elif type == "number" or type == "boolean" then tostring
      elif type == "null" then ""
      else error("\(type) (\(tojson)) is not valid in a csv row") end)
    | join(",") end;
def @tsv:
  if type != "array" then error("\(type) (\(tojson)) cannot be tsv-formatted, only an array can be")
  else map(
      if type == "string" then __weir_tsv_escape
      elif type == "number" or type == "boolean" then tostring
      elif type == "null" then ""
      else error("\(type) (\(tojson)) is not valid in a tsv row") end)
    | join("\t") end;
def @base32: tostring | __weir_base32;
def @base32d: tostring | __weir_base32d;

def INDEX(stream; idx_expr): reduce stream as $row ({}; .[$row | idx_expr | tostring] |= $row);
def INDEX(idx_expr): INDEX(.[]; idx_expr);
def JOIN($idx; idx_expr): [.[] | [., $idx[idx_expr]]];
def JOIN($idx; stream; idx_expr): stream | [., $idx[idx_expr]];
def JOIN($idx; stream; idx_expr; join_expr): stream | [., $idx[idx_expr]] | join_expr;
def recurse_down: recurse;
def lgamma_r:
  [lgamma, if . > 0 or . == floor then 1 elif ((-. | floor) % 2) == 0 then -1 else 1 end];
def format($f):
  if $f == "text" then @text elif $f == "json" then @json
  elif $f == "csv" then @csv elif $f == "tsv" then @tsv
  elif $f == "html" then @html elif $f == "uri" then @uri elif $f == "sh" then @sh
  elif $f == "base64" then @base64 elif $f == "base64d" then @base64d
  elif $f == "base32" then @base32 elif $f == "base32d" then @base32d
  else error("\($f) is not a valid format") end;

# `todate` of a broken-down time (`gmtime | todate`), and of fractional seconds as jq 1.7
# (the fraction is dropped, towards zero).
def __weir_todate: todate;
def todate:
  if type == "array" then strftime("%Y-%m-%dT%H:%M:%SZ")
  elif type == "number" then (if . < 0 then ceil else floor end) | __weir_todate
  else __weir_todate end;
# jq 1.6 and 1.7: `last(empty)` and `nth(n; empty)` are null.
def last(f): reduce f as $x (null; $x);
def nth($n; f):
  if $n < 0 then error("Out of bounds negative array index") else last(limit($n + 1; f)) end;
# jq's `delpaths`: the paths sorted, deleted from the last, and keys left in their order
# (jaq's deletion moves the last key into the place of the deleted one).
def __weir_delpath($p):
  if ($p | length) == 0 then null
  else ($p[-1] | __weir_index) as $k | $p[:-1] as $up
  | getpath($up) as $c
  | if $c == null then .
    elif ($c | type) == "object" and ($k | type) == "string"
    then setpath($up; $c | to_entries | map(select(.key != $k)) | from_entries)
    else setpath($up; $c | del(.[$k])) end
  end;
def delpaths($ps): reduce ($ps | sort | reverse)[] as $p (.; __weir_delpath($p));
def del(f): delpaths([path(f)]);
# As jq 1.7: a code point that is no Unicode scalar value becomes U+FFFD.
def __weir_implode: implode;
def implode:
  if type == "array"
  then map(if type == "number" and (. < 0 or . >= 1114112 or (. >= 55296 and . < 57344))
           then 65533 else . end)
    | __weir_implode
  else __weir_implode end;

# `-x` computes, as in jq and weir's own evaluator: jaq would negate a number that kept its
# input text by its text (`-1.50`), and an integer 0 to 0 (jq: -0). guard_term (fallback.rs)
# calls this for every `-x`.
# `l *= r` (guard_term, fallback.rs) through the native `__weir_mul` (`l * r`).
def __weir_mul_update(p; r): r as $b | p |= __weir_mul(.; $b);
def __weir_neg: if type == "number" then . * -1.0 else -. end;
