//! The keyed state of `aggregate`, laid out flat so that a million keys stay cheap.
//!
//! A hash map of key -> group paid, per key, a 64-byte slot (kept at most 7/8 full, so often
//! twice that), a separate heap allocation for the group's accumulators, and 40 bytes per
//! accumulator whatever the function. Here each key is stored once, in `keys`; the index is a
//! table of 4-byte row numbers hashed by the key they point to; every aggregate is a column
//! holding only what its function needs (8 bytes for a count, 8 bytes and a flag for a sum);
//! the time of a key's last update is kept only when it is not always 0 (that is, with
//! `state_ttl`). A key leaves by moving the last row into its place, so the columns stay dense.
//!
//! Row order depends on the order of inserts and removals, never on the hash, and nothing leaves
//! unsorted: checkpoints and final results go through `sorted_rows`. A checkpoint lists the
//! rows per key group (`keygroup`), written by one instance or several in the same bytes, and
//! read back into whichever instances own the groups now (`transforms::parallel`). Reading a
//! checkpoint goes straight into the columns, without building a tree of values for the whole
//! state first: one scanner reads the encoder's own bytes (sorted keys, no whitespace) at a few
//! nanoseconds a byte. There is one format and one reader; anything else is an error that
//! names its byte.
//!
//! A long file: the layout, its encoder and the scanner that reads exactly what the encoder
//! writes belong together, and about 600 of its lines are their tests.

use super::aggs::{Acc, AggSpec, Func};
use super::keygroup::{check_max, key_group, next_group};
use crate::value::Value;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use std::collections::BTreeSet;
use std::hash::BuildHasher;

/// The accumulators of one aggregate for every row.
#[derive(Clone)]
enum Column {
    Count(Vec<u64>),
    /// Sums: the bits of an `i64`, or of an `f64` where `float` is set (after a float input or
    /// an overflow), so integer sums print as integers.
    Sum {
        bits: Vec<u64>,
        float: Vec<bool>,
    },
    Avg(Vec<(f64, u64)>),
    /// `min`, `max`, `first` or `last` (the function says which).
    Value(Func, Vec<Option<Value>>),
    Distinct(Vec<BTreeSet<Value>>),
}

impl Column {
    fn new(func: Func) -> Column {
        match func {
            Func::Count => Column::Count(Vec::new()),
            Func::Sum => Column::Sum {
                bits: Vec::new(),
                float: Vec::new(),
            },
            Func::Avg => Column::Avg(Vec::new()),
            Func::Min | Func::Max | Func::First | Func::Last => Column::Value(func, Vec::new()),
            Func::CountDistinct => Column::Distinct(Vec::new()),
        }
    }

    /// Appends a row. `acc` comes from `Acc::new` or `Acc::decode` of this column's function,
    /// so it always fits; a misfit would be a bug here, and appends a fresh accumulator rather
    /// than leave the columns of different lengths.
    fn push(&mut self, acc: Acc) {
        match (self, acc) {
            (Column::Count(v), Acc::Count(n)) => v.push(n),
            (Column::Sum { bits, float }, Acc::SumInt(i)) => {
                bits.push(i as u64);
                float.push(false);
            }
            (Column::Sum { bits, float }, Acc::SumFloat(f)) => {
                bits.push(f.to_bits());
                float.push(true);
            }
            (Column::Avg(v), Acc::Avg { sum, n }) => v.push((sum, n)),
            (Column::Value(_, v), Acc::Min(x) | Acc::Max(x) | Acc::First(x) | Acc::Last(x)) => {
                v.push(x)
            }
            (Column::Distinct(v), Acc::Distinct(s)) => v.push(s),
            (col, _) => {
                debug_assert!(false, "an accumulator of another function");
                let fresh = col.fresh();
                col.push(fresh);
            }
        }
    }

    /// A new accumulator of this column's function.
    fn fresh(&self) -> Acc {
        Acc::new(self.func())
    }

    fn func(&self) -> Func {
        match self {
            Column::Count(_) => Func::Count,
            Column::Sum { .. } => Func::Sum,
            Column::Avg(_) => Func::Avg,
            Column::Value(f, _) => *f,
            Column::Distinct(_) => Func::CountDistinct,
        }
    }

    /// Moves row `r`'s accumulator out (a value or a set is taken, not copied); `put` returns
    /// it. Together they let `Acc` keep the one definition of every function's update.
    fn take(&mut self, r: usize) -> Acc {
        match self {
            Column::Count(v) => Acc::Count(v[r]),
            Column::Sum { bits, float } => {
                if float[r] {
                    Acc::SumFloat(f64::from_bits(bits[r]))
                } else {
                    Acc::SumInt(bits[r] as i64)
                }
            }
            Column::Avg(v) => Acc::Avg {
                sum: v[r].0,
                n: v[r].1,
            },
            Column::Value(f, v) => {
                let x = std::mem::take(&mut v[r]);
                match f {
                    Func::Min => Acc::Min(x),
                    Func::Max => Acc::Max(x),
                    Func::First => Acc::First(x),
                    _ => Acc::Last(x),
                }
            }
            Column::Distinct(v) => Acc::Distinct(std::mem::take(&mut v[r])),
        }
    }

    fn put(&mut self, r: usize, acc: Acc) {
        match (self, acc) {
            (Column::Count(v), Acc::Count(n)) => v[r] = n,
            (Column::Sum { bits, float }, Acc::SumInt(i)) => {
                bits[r] = i as u64;
                float[r] = false;
            }
            (Column::Sum { bits, float }, Acc::SumFloat(f)) => {
                bits[r] = f.to_bits();
                float[r] = true;
            }
            (Column::Avg(v), Acc::Avg { sum, n }) => v[r] = (sum, n),
            (Column::Value(_, v), Acc::Min(x) | Acc::Max(x) | Acc::First(x) | Acc::Last(x)) => {
                v[r] = x
            }
            (Column::Distinct(v), Acc::Distinct(s)) => v[r] = s,
            (col, _) => {
                debug_assert!(false, "an accumulator of another function");
                let fresh = col.fresh();
                col.put(r, fresh);
            }
        }
    }

    /// Row `r` as an `Acc`, for the numeric functions, whose accumulators are plain copies.
    fn copy(&self, r: usize) -> Option<Acc> {
        Some(match self {
            Column::Count(v) => Acc::Count(v[r]),
            Column::Sum { bits, float } => {
                if float[r] {
                    Acc::SumFloat(f64::from_bits(bits[r]))
                } else {
                    Acc::SumInt(bits[r] as i64)
                }
            }
            Column::Avg(v) => Acc::Avg {
                sum: v[r].0,
                n: v[r].1,
            },
            Column::Value(..) | Column::Distinct(_) => return None,
        })
    }

    fn update(&mut self, r: usize, v: Option<&Value>) {
        // Counts and integer sums in place, as `Acc::update` would do them; the rest goes
        // through an `Acc`.
        match self {
            Column::Count(c) => {
                if !matches!(v, Some(Value::Null)) {
                    c[r] += 1;
                }
                return;
            }
            Column::Sum { bits, float } if !float[r] => {
                if let Some(Value::Int(i)) = v {
                    if let Some(x) = (bits[r] as i64).checked_add(*i) {
                        bits[r] = x as u64;
                        return;
                    }
                }
            }
            _ => {}
        }
        let mut acc = self.take(r);
        acc.update(v);
        self.put(r, acc);
    }

    /// Folds in a count or an integer sum made elsewhere (`sources::folding`), as merging the
    /// accumulator of those records would.
    fn fold(&mut self, r: usize, v: i64) {
        match self {
            Column::Count(c) => {
                c[r] += v as u64;
                return;
            }
            Column::Sum { bits, float } if !float[r] => {
                if let Some(x) = (bits[r] as i64).checked_add(v) {
                    bits[r] = x as u64;
                    return;
                }
            }
            _ => {}
        }
        let mut acc = self.take(r);
        let other = match acc {
            Acc::Count(_) => Acc::Count(v as u64),
            _ => Acc::SumInt(v),
        };
        acc.merge(&other);
        self.put(r, acc);
    }

    /// The same value as `Acc::result`.
    fn result(&self, r: usize) -> Value {
        match self {
            Column::Value(_, v) => v[r].clone().unwrap_or(Value::Null),
            Column::Distinct(v) => Value::Int(v[r].len() as i64),
            _ => self.copy(r).map(|a| a.result()).unwrap_or(Value::Null),
        }
    }

    /// The same bytes as `Acc::encode`.
    fn encode(&self, r: usize, out: &mut Vec<u8>) {
        match self {
            Column::Count(v) => out.extend_from_slice(itoa::Buffer::new().format(v[r]).as_bytes()),
            Column::Sum { bits, float } if !float[r] => {
                out.extend_from_slice(itoa::Buffer::new().format(bits[r] as i64).as_bytes())
            }
            Column::Value(_, v) => match &v[r] {
                Some(x) => x.write_json(out),
                None => out.extend_from_slice(b"null"),
            },
            // Writing into a Vec cannot fail, and a set of values always serializes.
            Column::Distinct(v) => {
                let _ = serde_json::to_writer(&mut *out, &v[r]);
            }
            _ => {
                if let Some(a) = self.copy(r) {
                    a.encode(out);
                }
            }
        }
    }

    fn swap_remove(&mut self, r: usize) {
        match self {
            Column::Count(v) => {
                v.swap_remove(r);
            }
            Column::Sum { bits, float } => {
                bits.swap_remove(r);
                float.swap_remove(r);
            }
            Column::Avg(v) => {
                v.swap_remove(r);
            }
            Column::Value(_, v) => {
                v.swap_remove(r);
            }
            Column::Distinct(v) => {
                v.swap_remove(r);
            }
        }
    }
}

/// The rows without the index: what a checkpoint copies and encodes on another thread.
#[derive(Clone)]
pub struct Rows {
    keys: Vec<Value>,
    /// Each row's last update time, or empty while every one is 0 (always, without a ttl).
    last_seen: Vec<i64>,
    cols: Vec<Column>,
    /// Rows `0..sorted` are in strictly increasing key order: all of them right after a
    /// checkpoint was read, so the next checkpoint (or the final results) need not sort them
    /// again, only merge in the rows added since.
    sorted: usize,
}

impl Rows {
    fn new(specs: &[AggSpec]) -> Rows {
        Rows {
            keys: Vec::new(),
            last_seen: Vec::new(),
            cols: specs.iter().map(|s| Column::new(s.func)).collect(),
            sorted: 0,
        }
    }

    pub fn last_seen(&self, r: usize) -> i64 {
        self.last_seen.get(r).copied().unwrap_or(0)
    }

    fn set_last_seen(&mut self, r: usize, t: i64) {
        if self.last_seen.is_empty() {
            if t == 0 {
                return;
            }
            self.last_seen.resize(self.keys.len(), 0);
        }
        self.last_seen[r] = t;
    }

    /// Row numbers in key order (jq's order): the rows after the sorted ones are sorted, then
    /// merged with those.
    pub fn sorted_rows(&self) -> Vec<u32> {
        let keys = &self.keys;
        let head = self.sorted.min(keys.len());
        let mut tail: Vec<u32> = (head as u32..keys.len() as u32).collect();
        if keys[head..].iter().all(|k| matches!(k, Value::Str(_))) {
            // Sorting by the first 8 bytes (as a big-endian number, zero-padded) is consistent
            // with string order and keeps most comparisons inside the array being sorted.
            let mut pre: Vec<(u64, u32)> = tail
                .iter()
                .map(|&r| (prefix8(&keys[r as usize]), r))
                .collect();
            pre.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| key_cmp(&keys[a.1 as usize], &keys[b.1 as usize]))
            });
            tail.clear();
            tail.extend(pre.iter().map(|p| p.1));
        } else {
            tail.sort_unstable_by(|&a, &b| key_cmp(&keys[a as usize], &keys[b as usize]));
        }
        if head == 0 {
            return tail;
        }
        let mut out = Vec::with_capacity(keys.len());
        let (mut i, mut j) = (0, 0);
        while i < head && j < tail.len() {
            if key_cmp(&keys[i], &keys[tail[j] as usize]).is_lt() {
                out.push(i as u32);
                i += 1;
            } else {
                out.push(tail[j]);
                j += 1;
            }
        }
        out.extend(i as u32..head as u32);
        out.extend_from_slice(&tail[j..]);
        out
    }

    /// The whole state of an aggregate of one instance (see [`encode_state`]).
    pub fn encode(&self, max: u32, finished: bool, clock: i64) -> Vec<u8> {
        encode_state(&[self], max, finished, clock)
    }

    /// This instance's key groups, `[g,[[key,last_seen,acc,...],...]]` each, in group order
    /// and each group's keys in key order, so the bytes never depend on the order of rows or
    /// on which instance held them.
    fn write_groups(&self, max: u32, out: &mut Vec<u8>, first: &mut bool) {
        let order = self.sorted_rows();
        // (group, row), stably sorted by group: key order within each group.
        let mut by_group: Vec<(u32, u32)> = order
            .iter()
            .map(|&r| (key_group(&self.keys[r as usize], max), r))
            .collect();
        by_group.sort_by_key(|x| x.0);
        let mut num = itoa::Buffer::new();
        let mut open: Option<u32> = None;
        for &(g, r) in &by_group {
            let r = r as usize;
            if open != Some(g) {
                if open.is_some() {
                    out.extend_from_slice(b"]]");
                }
                if !*first {
                    out.push(b',');
                }
                *first = false;
                out.push(b'[');
                out.extend_from_slice(num.format(g).as_bytes());
                out.extend_from_slice(b",[");
                open = Some(g);
            } else {
                out.push(b',');
            }
            out.push(b'[');
            self.keys[r].write_json(out);
            out.push(b',');
            out.extend_from_slice(num.format(self.last_seen(r)).as_bytes());
            for c in &self.cols {
                out.push(b',');
                c.encode(r, out);
            }
            out.push(b']');
        }
        if open.is_some() {
            out.extend_from_slice(b"]]");
        }
    }
}

/// An aggregate's state, written by its instances together:
/// `{"max_parallelism":M,"finished":..,"clock":..,"key_groups":[[g,[[key,last_seen,acc,...],
/// ...]],...]}`, non-empty key groups in increasing order. `parts` are the instances in order,
/// which own increasing ranges of groups, so their groups follow one another.
pub fn encode_state(parts: &[&Rows], max: u32, finished: bool, clock: i64) -> Vec<u8> {
    let rows: usize = parts.iter().map(|p| p.keys.len()).sum();
    let width = parts.first().map_or(0, |p| p.cols.len());
    let mut out = Vec::with_capacity(96 + rows * (24 + 12 * width));
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"max_parallelism\":");
    out.extend_from_slice(num.format(max).as_bytes());
    out.extend_from_slice(b",\"finished\":");
    out.extend_from_slice(if finished { b"true" } else { b"false" });
    out.extend_from_slice(b",\"clock\":");
    out.extend_from_slice(num.format(clock).as_bytes());
    out.extend_from_slice(b",\"key_groups\":[");
    let mut first = true;
    for p in parts {
        p.write_groups(max, &mut out, &mut first);
    }
    out.extend_from_slice(b"]}");
    out
}

/// jq's order of keys; strings (the usual keys) compare as plain strings, which is the same
/// order, the cheap way.
fn key_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.as_str().cmp(y.as_str()),
        _ => a.cmp(b),
    }
}

/// The first 8 bytes of a string key, zero-padded, as a big-endian number: two keys whose
/// numbers differ are in the numbers' order.
fn prefix8(k: &Value) -> u64 {
    let b = k.as_str().unwrap_or("").as_bytes();
    let mut buf = [0u8; 8];
    let n = b.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(buf)
}

/// Every key's row, and an index from key to row.
pub struct Keyed {
    rows: Rows,
    /// Row numbers, hashed by their row's key: the key itself is stored only once.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// No row's last update is older than this (a lower bound, exact after `expire`), so an
    /// `expire` that would drop nothing does not look at the rows.
    oldest: i64,
}

/// What the state may not hold: row numbers are 4 bytes.
const MAX_ROWS: usize = u32::MAX as usize;

impl Keyed {
    pub fn new(specs: &[AggSpec]) -> Keyed {
        Keyed {
            rows: Rows::new(specs),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            oldest: i64::MAX,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.keys.is_empty()
    }

    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    pub fn key(&self, r: usize) -> &Value {
        &self.rows.keys[r]
    }

    pub fn last_seen(&self, r: usize) -> i64 {
        self.rows.last_seen(r)
    }

    /// The row of `key`, added (with fresh accumulators, last seen at `now`) if it is new;
    /// the flag says whether it was. Fails only past 2^32 - 1 keys.
    pub fn find_or_insert(
        &mut self,
        key: std::borrow::Cow<'_, Value>,
        now: i64,
    ) -> Result<(usize, bool), String> {
        // The key is copied only when it is new.
        let h = self.hasher.hash_one(&*key);
        let Rows { keys, .. } = &self.rows;
        let hasher = &self.hasher;
        let entry = self.index.entry(
            h,
            |&r| keys[r as usize] == *key,
            |&r| hasher.hash_one(&keys[r as usize]),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => Ok((*e.get() as usize, false)),
            hashbrown::hash_table::Entry::Vacant(e) => {
                let r = keys.len();
                if r >= MAX_ROWS {
                    return Err(format!("aggregate: more than {MAX_ROWS} keys"));
                }
                e.insert(r as u32);
                self.push_row(key.into_owned(), now);
                Ok((r, true))
            }
        }
    }

    /// Appends a row with fresh accumulators (the index entry is the caller's business).
    fn push_row(&mut self, key: Value, now: i64) {
        for c in &mut self.rows.cols {
            let a = c.fresh();
            c.push(a);
        }
        self.push_key(key, now);
    }

    /// Starts row `r` afresh, as if its key had been removed and added again at `now`.
    pub fn reset(&mut self, r: usize, now: i64) {
        for c in &mut self.rows.cols {
            let a = c.fresh();
            c.put(r, a);
        }
        self.rows.set_last_seen(r, now);
        self.oldest = self.oldest.min(now);
    }

    /// Folds one record's arguments (already checked) into row `r`, last seen at `now` or later.
    pub fn update(&mut self, r: usize, args: &[Option<Value>], now: i64) {
        for (c, a) in self.rows.cols.iter_mut().zip(args) {
            c.update(r, a.as_ref());
        }
        let t = self.rows.last_seen(r).max(now);
        self.rows.set_last_seen(r, t);
    }

    /// Folds one key's counts and sums from a parse worker's table into row `r`: one value
    /// per column, each column a `count` or a `sum` (see `sources::folding`).
    pub fn fold(&mut self, r: usize, vals: &[i64]) {
        for (c, &v) in self.rows.cols.iter_mut().zip(vals) {
            c.fold(r, v);
        }
    }

    /// Row `r`'s result for the aggregate in column `i`.
    pub fn result(&self, r: usize, i: usize) -> Value {
        self.rows.cols[i].result(r)
    }

    /// Removes row `r`: the last row moves into its place and its index entry follows.
    fn remove(&mut self, r: usize) {
        let rows = &mut self.rows;
        let h = self.hasher.hash_one(&rows.keys[r]);
        if let Ok(e) = self.index.find_entry(h, |&x| x as usize == r) {
            e.remove();
        }
        let last = rows.keys.len() - 1;
        if r != last {
            let h = self.hasher.hash_one(&rows.keys[last]);
            if let Some(x) = self.index.find_mut(h, |&x| x as usize == last) {
                *x = r as u32;
            }
        }
        rows.keys.swap_remove(r);
        rows.sorted = rows.sorted.min(r);
        for c in &mut rows.cols {
            c.swap_remove(r);
        }
        if !rows.last_seen.is_empty() {
            rows.last_seen.swap_remove(r);
        }
    }

    /// Drops every key last updated before `horizon`.
    pub fn expire(&mut self, horizon: i64) {
        if self.oldest >= horizon || self.rows.keys.is_empty() {
            return;
        }
        if self.rows.last_seen.is_empty() {
            // Every row was last seen at 0, which is before the horizon.
            self.clear();
            return;
        }
        let mut oldest = i64::MAX;
        let mut r = 0;
        while r < self.rows.keys.len() {
            let t = self.rows.last_seen[r];
            if t < horizon {
                // The last row moves here: look at this row number again.
                self.remove(r);
            } else {
                oldest = oldest.min(t);
                r += 1;
            }
        }
        self.oldest = oldest;
    }

    /// Forgets every key (keeping the columns' functions).
    pub fn clear(&mut self) {
        let rows = &mut self.rows;
        rows.keys = Vec::new();
        rows.last_seen = Vec::new();
        rows.sorted = 0;
        for c in &mut rows.cols {
            *c = Column::new(c.func());
        }
        self.index = HashTable::new();
        self.oldest = i64::MAX;
    }

    /// Replaces the state with the one [`encode_state`] wrote, as the only instance.
    /// Returns `finished` and `clock`.
    pub fn decode(
        &mut self,
        specs: &[AggSpec],
        state: &[u8],
        max: u32,
    ) -> Result<(bool, i64), String> {
        decode_state(&mut [self], specs, state, max)
    }

    /// Appends a row's key and last update time, keeping `sorted`: the whole of a new row
    /// (`push_row`) or of one read from a checkpoint, whose accumulators are pushed as read.
    fn push_key(&mut self, key: Value, t: i64) {
        let rows = &mut self.rows;
        let n = rows.keys.len();
        if rows.sorted == n && rows.keys.last().is_none_or(|k| key_cmp(k, &key).is_lt()) {
            rows.sorted += 1;
        }
        rows.keys.push(key);
        if !rows.last_seen.is_empty() {
            rows.last_seen.push(t);
        } else if t != 0 {
            rows.last_seen.resize(rows.keys.len(), 0);
            let last = rows.keys.len() - 1;
            rows.last_seen[last] = t;
        }
        self.oldest = self.oldest.min(t);
    }

    /// Builds the index of rows read from a checkpoint. Every key is new (keys are unique
    /// across key groups, and increase within one), so it takes them without comparing keys.
    fn index_read(&mut self) {
        let hasher = &self.hasher;
        let keys = &self.rows.keys;
        self.index = HashTable::with_capacity(keys.len());
        for (r, k) in keys.iter().enumerate() {
            self.index
                .insert_unique(hasher.hash_one(k), r as u32, |&x| {
                    hasher.hash_one(&keys[x as usize])
                });
        }
    }
}

/// Replaces the state of every instance (`parts`, in order) with the one [`encode_state`]
/// wrote, whatever parallelism wrote it: each key group goes to the instance that owns it now.
/// `max` is the pipeline's number of key groups; a state with another is an error (the keys
/// would hash elsewhere). Returns `finished` and `clock`. The message of an error names the
/// problem and its byte; the caller says which checkpoint and node. (A checkpoint's CRC has
/// already vouched for the bytes, so anything the encoder does not write is a bug or a
/// hand-edited file.)
pub fn decode_state(
    parts: &mut [&mut Keyed],
    specs: &[AggSpec],
    state: &[u8],
    max: u32,
) -> Result<(bool, i64), String> {
    for p in parts.iter_mut() {
        **p = Keyed::new(specs);
    }
    let text = std::str::from_utf8(state).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let funcs: Vec<Func> = specs.iter().map(|s| s.func).collect();
    let r = read(parts, text, &funcs, max);
    match r {
        Ok(_) => {
            for p in parts.iter_mut() {
                p.index_read();
            }
        }
        Err(_) => {
            for p in parts.iter_mut() {
                p.clear();
            }
        }
    }
    r
}

/// Reads exactly what [`encode_state`] writes: no whitespace, key groups in increasing order,
/// each group's keys in strictly increasing order (so no key twice), each row of the right
/// length and every accumulator fitting its function. Rows are appended to their instance as
/// they come.
fn read(
    parts: &mut [&mut Keyed],
    text: &str,
    funcs: &[Func],
    max: u32,
) -> Result<(bool, i64), String> {
    let mut c = Scan {
        text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    c.expect(b"{\"max_parallelism\":")?;
    let at = c.i;
    let m = c
        .int()
        .ok_or_else(|| c.wanted("an integer max_parallelism"))?;
    check_max(m, max, Some(at))?;
    c.expect(b",\"finished\":")?;
    let finished = if c.eat(b"true").is_some() {
        true
    } else {
        c.expect(b"false")?;
        false
    };
    c.expect(b",\"clock\":")?;
    let clock = c.int().ok_or_else(|| c.wanted("an integer clock"))?;
    c.expect(b",\"key_groups\":[")?;
    let n = parts.len();
    let mut prev_group: Option<i64> = None;
    if c.eat(b"]").is_none() {
        loop {
            c.expect(b"[")?;
            let at = c.i;
            let g = c.int().ok_or_else(|| c.wanted("a key group number"))?;
            let i = next_group(g, &mut prev_group, max, n, Some(at))?;
            c.expect(b",[")?;
            let part = &mut *parts[i];
            read_rows(part, &mut c, funcs)?;
            c.expect(b"]")?;
            if c.eat(b",").is_none() {
                c.expect(b"]")?;
                break;
            }
        }
    }
    c.expect(b"}")?;
    if c.i != c.b.len() {
        return Err(c.wanted("the end of the state"));
    }
    Ok((finished, clock))
}

/// One key group's rows, `[key,last_seen,acc,...],...]` after its opening bracket, appended to
/// `part`.
fn read_rows(part: &mut Keyed, c: &mut Scan, funcs: &[Func]) -> Result<(), String> {
    if c.eat(b"]").is_some() {
        return Ok(());
    }
    // The group's previous key, by row number in `part`.
    let mut prev: Option<usize> = None;
    loop {
        if c.eat(b"[").is_none() {
            return Err(c.wanted("a group (an array)"));
        }
        let at = c.i;
        let key = c.value().ok_or_else(|| c.wanted("a key"))?;
        if prev.is_some_and(|r| !key_cmp(&part.rows.keys[r], &key).is_lt()) {
            return Err(format!(
                "group keys out of order at byte {at} (a key twice, or not sorted)"
            ));
        }
        let mut parts = 0;
        let t = if c.eat(b",").is_some() {
            c.int()
                .ok_or_else(|| c.wanted("an integer time of last update"))?
        } else {
            return Err(parts_message(c.rest_of_group(0)?, funcs.len()));
        };
        for (col, &f) in part.rows.cols.iter_mut().zip(funcs) {
            if c.eat(b",").is_none() {
                return Err(parts_message(c.rest_of_group(parts)?, funcs.len()));
            }
            let acc = match (f, c.int()) {
                (Func::Count, Some(n)) if n >= 0 => Acc::Count(n as u64),
                (Func::Sum, Some(n)) => Acc::SumInt(n),
                (_, Some(n)) => Acc::decode_owned(f, Value::Int(n))?,
                (_, None) => {
                    let v = c.value().ok_or_else(|| c.wanted("an accumulator"))?;
                    Acc::decode_owned(f, v)?
                }
            };
            col.push(acc);
            parts += 1;
        }
        if c.eat(b"]").is_none() {
            return Err(parts_message(c.rest_of_group(parts)?, funcs.len()));
        }
        if part.rows.keys.len() >= MAX_ROWS {
            return Err(format!("aggregate: more than {MAX_ROWS} keys"));
        }
        prev = Some(part.rows.keys.len());
        part.push_key(key, t);
        if c.eat(b",").is_none() {
            c.expect(b"]")?;
            return Ok(());
        }
    }
}

/// A cursor over the encoder's own bytes, for `Keyed::read`. Every method is `None` (or an
/// error naming the byte) where the text is not what the encoder writes.
struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    /// Arrays being read, one inside another: deeper nesting than any accumulator needs is
    /// handed to the JSON parser, which has a limit, rather than to the stack.
    depth: u32,
}

impl Scan<'_> {
    /// `lit`, or an error saying it was expected here.
    fn expect(&mut self, lit: &[u8]) -> Result<(), String> {
        self.eat(lit)
            .ok_or_else(|| self.wanted(&format!("`{}`", String::from_utf8_lossy(lit))))
    }

    /// The message for something other than `what` at the cursor.
    fn wanted(&self, what: &str) -> String {
        format!("expected {what} at byte {}", self.i)
    }

    /// Counts the values left in a group the pipeline's aggregates do not fit, `read` of them
    /// already, up to its `]`: the message says how many parts the group has.
    fn rest_of_group(&mut self, read: usize) -> Result<usize, String> {
        let mut n = read;
        loop {
            if self.eat(b"]").is_some() {
                return Ok(n);
            }
            if self.b.get(self.i) == Some(&b',') {
                self.i += 1;
            }
            let len = value_len(&self.b[self.i..]).ok_or_else(|| self.wanted("a value"))?;
            if len == 0 {
                return Err(self.wanted("a value"));
            }
            self.i += len;
            n += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len()) == Some(lit) {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// An integer as the encoder writes one: `-?(0|[1-9][0-9]*)` that fits an i64, followed by
    /// neither a fraction nor an exponent. Anything else (`-0` too) is `None` and moves nothing.
    fn int(&mut self) -> Option<i64> {
        let b = self.b;
        let mut j = self.i;
        let neg = b.get(j) == Some(&b'-');
        j += usize::from(neg);
        let start = j;
        let mut v: u64 = 0;
        while let Some(&d) = b.get(j) {
            if !d.is_ascii_digit() {
                break;
            }
            // 19 digits always fit a u64; longer numbers take the checked road.
            v = if j - start < 19 {
                v * 10 + u64::from(d - b'0')
            } else {
                v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?
            };
            j += 1;
        }
        let n = j - start;
        if n == 0 || (b[start] == b'0' && (n > 1 || neg)) {
            return None;
        }
        if matches!(b.get(j), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let v = if neg {
            0i64.checked_sub_unsigned(v)?
        } else {
            i64::try_from(v).ok()?
        };
        self.i = j;
        Some(v)
    }

    /// One JSON value. Plain integers and strings without escapes (nearly every key and
    /// accumulator) are read here; anything else is measured and handed to the JSON parser
    /// records are read with, so it means the same.
    fn value(&mut self) -> Option<Value> {
        let b = self.b;
        match *b.get(self.i)? {
            b'"' => {
                let from = self.i + 1;
                let mut j = from;
                while let Some(&ch) = b.get(j) {
                    if ch == b'"' {
                        // Between two quotes of valid UTF-8: a whole string.
                        let s = self.text.get(from..j)?;
                        self.i = j + 1;
                        return Some(Value::str(s));
                    }
                    if ch == b'\\' || ch < 0x20 {
                        break;
                    }
                    j += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                if let Some(v) = self.int() {
                    return Some(Value::Int(v));
                }
                if let Some(v) = self.number() {
                    return Some(v);
                }
            }
            // Arrays (avg's [sum, n], count_distinct's sets, array values) element by element.
            b'[' => {
                let start = self.i;
                if let Some(v) = self.array() {
                    return Some(v);
                }
                self.i = start;
            }
            b'n' if self.eat(b"null").is_some() => return Some(Value::Null),
            b't' if self.eat(b"true").is_some() => return Some(Value::Bool(true)),
            b'f' if self.eat(b"false").is_some() => return Some(Value::Bool(false)),
            _ => {}
        }
        let rest = &b[self.i..];
        let n = value_len(rest)?;
        let v = Value::from_json(&rest[..n]).ok()?;
        self.i += n;
        Some(v)
    }
}

impl Scan<'_> {
    /// A number that `int` did not take (a fraction, an exponent, `-0`, beyond i64), read by
    /// `value::read_number` as the JSON parser reads numbers, so a number that kept its input
    /// text (`1.50`) comes back with it. Anything else (out of range too) is `None` and moves
    /// nothing.
    fn number(&mut self) -> Option<Value> {
        let n = crate::value::number_len(self.b.get(self.i..)?)?;
        let v = Value::from_number_text(self.text.get(self.i..self.i + n)?)?;
        self.i += n;
        Some(v)
    }

    /// `[v, ...]`, each element by `value`.
    fn array(&mut self) -> Option<Value> {
        if self.depth >= 64 {
            return None;
        }
        self.eat(b"[")?;
        self.depth += 1;
        let mut items = Vec::new();
        let done = if self.eat(b"]").is_some() {
            Some(())
        } else {
            loop {
                let Some(v) = self.value() else { break None };
                items.push(v);
                if self.eat(b",").is_none() {
                    break self.eat(b"]");
                }
            }
        };
        self.depth -= 1;
        done.map(|_| Value::Array(items))
    }
}

/// The length of the JSON value at the start of `b`, found by matching brackets and skipping
/// strings; the parser then checks the value itself.
fn value_len(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        match *b.get(i)? {
            b'"' => {
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
}

/// A group with `accs` accumulators where the pipeline has `want` aggregates.
fn parts_message(accs: usize, want: usize) -> String {
    format!("a group has {accs} parts, the pipeline has {want} aggregates")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::aggs::parse_agg;
    use crate::transforms::keygroup::instance_of;
    use proptest::prelude::*;

    /// Every function, in the order of the checkpoint written by the map-based state below.
    const ALL: [&str; 8] = [
        "count",
        "sum(.v)",
        "min(.v)",
        "max(.v)",
        "avg(.v)",
        "first(.v)",
        "last(.v)",
        "count_distinct(.v)",
    ];

    fn specs(list: &[&str]) -> Vec<AggSpec> {
        list.iter()
            .enumerate()
            .map(|(i, t)| parse_agg(&format!("a{i}"), t).unwrap())
            .collect()
    }

    fn json(s: &str) -> Value {
        Value::from_json(s.as_bytes()).unwrap()
    }

    /// Folds `v` into `key`'s row as `aggregate` does (arguments checked first).
    fn fold(k: &mut Keyed, sp: &[AggSpec], key: Value, t: i64, v: &Value) -> usize {
        let (r, _) = k.find_or_insert(std::borrow::Cow::Owned(key), t).unwrap();
        let args: Vec<Option<Value>> = sp
            .iter()
            .map(|s| s.arg.as_ref().map(|_| v.clone()))
            .collect();
        if crate::transforms::aggs::check_args(sp, &args).is_ok() {
            k.update(r, &args, t);
        }
        r
    }

    fn results(k: &Keyed, n: usize) -> Vec<String> {
        k.rows()
            .sorted_rows()
            .iter()
            .map(|&r| {
                let r = r as usize;
                let mut s = k.key(r).to_json_string();
                for i in 0..n {
                    s.push(' ');
                    s.push_str(&k.result(r, i).to_json_string());
                }
                s
            })
            .collect()
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// A checkpoint's copy of the rows keeps the state as of the copy while the live rows go
    /// on: what the encoding on another thread relies on.
    #[test]
    fn a_copy_of_the_rows_does_not_see_later_updates() {
        let sp = specs(&ALL);
        let mut k = Keyed::new(&sp);
        for (i, key) in ["a", "b", "a", "c"].iter().enumerate() {
            fold(&mut k, &sp, Value::str(key), 0, &Value::Int(i as i64));
        }
        let before = text(&k.rows().encode(1, false, 0));
        let copy = k.rows().clone();
        for (i, key) in ["a", "b", "d"].iter().enumerate() {
            fold(&mut k, &sp, Value::str(key), 0, &Value::Int(10 + i as i64));
        }
        assert_eq!(text(&copy.encode(1, false, 0)), before);
        let after = text(&k.rows().encode(1, false, 0));
        assert_ne!(after, before);
        assert!(after.contains("[0,2,10]"), "{after}");
    }

    /// Written by the map-based state (weir before the flat layout) for these records, with
    /// `aggs` = ALL, `state_ttl` and `time = ".ts"` in ms: keys of several types, an escaped
    /// key, bad records that left empty groups, an integer sum that overflowed to a float.
    const OLD_STATE: &str = r#"{"max_parallelism":1,"finished":false,"clock":9000,"key_groups":[[0,[[null,6000,0,0,null,null,[0.0,0],null,null,[]],[7,5000,1,0,null,null,[0.0,0],null,null,[]],["a",2000,1,2.5,2.5,2.5,[2.5,1],2.5,2.5,[2.5]],["a\"q\\é",4000,0,0,null,null,[0.0,0],null,null,[]],["b",9000,3,9.223372036854776e+18,1,9223372036854775807,[9.223372036854776e+18,3],3,1,[1,3,9223372036854775807]],["c",8000,1,-4,-4,-4,[-4.0,1],-4,-4,[-4]]]]]}"#;

    #[test]
    fn the_old_encoding_decodes_and_encodes_back_byte_for_byte() {
        let sp = specs(&ALL);
        let mut k = Keyed::new(&sp);
        let (finished, clock) = k.decode(&sp, OLD_STATE.as_bytes(), 1).unwrap();
        assert!(!finished);
        assert_eq!(clock, 9000);
        assert_eq!(k.len(), 6);
        assert_eq!(text(&k.rows().encode(1, finished, clock)), OLD_STATE);
        let b = results(&k, sp.len());
        assert_eq!(
            b[4],
            "\"b\" 3 9223372036854776000 1 9223372036854775807 3074457345618258400 3 1 3"
        );
        assert_eq!(b[1], "7 1 0 null null null null null 0");
        // Bytes the encoder does not write (whitespace) are an error naming the byte.
        let spaced = OLD_STATE.replace(",\"key_groups\"", ", \"key_groups\"");
        let mut g = Keyed::new(&sp);
        let e = g.decode(&sp, spaced.as_bytes(), 1).unwrap_err();
        assert_eq!(e, r#"expected `,"key_groups":[` at byte 50"#);
        assert!(g.is_empty());
        // And the rows go on: a later key merges in order, an expired one leaves.
        fold(&mut k, &sp, Value::str("bb"), 9500, &Value::Int(1));
        k.expire(4500);
        let keys: Vec<String> = results(&k, 0);
        assert_eq!(keys, ["null", "7", "\"b\"", "\"bb\"", "\"c\""]);
    }

    #[test]
    fn float_sums_stay_floats_through_a_checkpoint() {
        let sp = specs(&["sum(.v)", "avg(.v)"]);
        let mut k = Keyed::new(&sp);
        // 0 + -0.0 is 0.0: a float sum, which must read back as one.
        fold(&mut k, &sp, Value::str("z"), 0, &Value::float(-0.0));
        fold(&mut k, &sp, Value::str("f"), 0, &Value::float(2.0));
        fold(&mut k, &sp, Value::str("i"), 0, &Value::Int(2));
        let s = text(&k.rows().encode(1, false, 0));
        assert_eq!(
            s,
            r#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["f",0,2.0,[2.0,1]],["i",0,2,[2.0,1]],["z",0,0.0,[0.0,1]]]]]}"#
        );
        let mut d = Keyed::new(&sp);
        d.decode(&sp, s.as_bytes(), 1).unwrap();
        assert_eq!(text(&d.rows().encode(1, false, 0)), s);
        fold(&mut d, &sp, Value::str("f"), 0, &Value::Int(1));
        fold(&mut d, &sp, Value::str("i"), 0, &Value::Int(1));
        // "f" (row 0) stays a float sum, which prints as 3; "i" (row 1) an integer one.
        assert!(matches!(d.result(0, 0), Value::Float(f, _) if f == 3.0));
        assert!(matches!(d.result(1, 0), Value::Int(3)));
    }

    #[test]
    fn corrupt_states_are_errors_that_name_the_problem() {
        let sp = specs(&["count", "sum(.v)"]);
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1]]]]}"#,
                "a group has 1 parts, the pipeline has 2 aggregates",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,2,3,4]]]]}"#,
                "a group has 4 parts, the pipeline has 2 aggregates",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[[]]]]}"#,
                "expected a key at byte 67",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,"x",2]]]]}"#,
                r#"aggregate state "x" does not fit Count"#,
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,-1,2]]]]}"#,
                "aggregate state -1 does not fit Count",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,[2]]]]]}"#,
                "aggregate state [2] does not fit Sum",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,"x"]]]]}"#,
                r#"aggregate state "x" does not fit Count"#,
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0.5,1,2]]]]}"#,
                "expected an integer time of last update at byte 71",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":1e3,"key_groups":[]}"#,
                "expected an integer clock at byte 46",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,["a"]]]}"#,
                "expected a group (an array) at byte 66",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[{"a":1}]]]}"#,
                "expected a group (an array) at byte 66",
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":5}"#,
                r#"expected `,"key_groups":[` at byte 47"#,
            ),
            (
                br#"{"max_parallelism":1,"finished":false,"clock":0}"#,
                r#"expected `,"key_groups":[` at byte 47"#,
            ),
            (br#"[1,2]"#, r#"expected `{"max_parallelism":` at byte 0"#),
            (br#"7"#, r#"expected `{"max_parallelism":` at byte 0"#),
        ];
        for (state, want) in cases {
            let mut k = Keyed::new(&sp);
            let got = k.decode(&sp, state, 1).unwrap_err();
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(state));
        }
        // Broken JSON: a message, whatever it is, and no panic.
        for state in [
            &br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,2]"#[..],
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,2]]]]} x"#,
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,01,2]]]]}"#,
            b"{\"max_parallelism\":1,\"finished\":false,\"clock\":0,\"key_groups\":[[0,[[\"\xff\",0,1,2]]]]}",
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a\q",0,1,2]]]]}"#,
            b"",
        ] {
            let mut k = Keyed::new(&sp);
            let got = k.decode(&sp, state, 1).unwrap_err();
            assert!(!got.is_empty(), "{}", String::from_utf8_lossy(state));
        }
    }

    #[test]
    fn a_key_twice_or_out_of_order_is_an_error() {
        let sp = specs(&["count"]);
        for s in [
            &br#"{"max_parallelism":1,"finished":true,"clock":5,"key_groups":[[0,[["b",0,1],["a",0,2]]]]}"#[..],
            br#"{"max_parallelism":1,"finished":true,"clock":5,"key_groups":[[0,[["a",0,1],["a",3,7]]]]}"#,
        ] {
            let mut k = Keyed::new(&sp);
            let e = k.decode(&sp, s, 1).unwrap_err();
            assert_eq!(
                e,
                "group keys out of order at byte 76 (a key twice, or not sorted)"
            );
            assert!(k.is_empty());
        }
        // Times and clocks are integers, read exactly (not through a double).
        let mut k = Keyed::new(&sp);
        let s =
            br#"{"max_parallelism":1,"finished":false,"clock":9007199254740993,"key_groups":[[0,[["a",9007199254740993,1]]]]}"#;
        assert_eq!(k.decode(&sp, s, 1).unwrap(), (false, 9007199254740993));
        assert_eq!(k.last_seen(0), 9007199254740993);
    }

    #[test]
    fn rows_move_and_the_index_follows() {
        let sp = specs(&["count", "sum(.v)"]);
        let mut k = Keyed::new(&sp);
        for i in 0..5000i64 {
            fold(&mut k, &sp, Value::Int(i % 1000), i, &Value::Int(i));
        }
        assert_eq!(k.len(), 1000);
        // Keys 0..500 were last seen at 4000..4500; the rest later.
        k.expire(4500);
        assert_eq!(k.len(), 500);
        for i in 0..1000i64 {
            let (r, new) = k
                .find_or_insert(std::borrow::Cow::Owned(Value::Int(i)), 9999)
                .unwrap();
            assert_eq!(new, i < 500, "{i}");
            if !new {
                assert_eq!(k.result(r, 0), Value::Int(5));
                let sum: i64 = (0..5).map(|j| i + 1000 * j).sum();
                assert_eq!(k.result(r, 1), Value::Int(sum));
                assert_eq!(k.last_seen(r), 4000 + i);
            }
        }
        // Without a ttl every row was last seen at 0, kept without a column of zeros.
        let mut z = Keyed::new(&sp);
        fold(&mut z, &sp, Value::str("x"), 0, &Value::Int(1));
        assert!(z.rows.last_seen.is_empty());
        z.expire(0);
        assert_eq!(z.len(), 1);
        z.expire(1);
        assert!(z.is_empty());
    }

    #[test]
    fn key_groups_move_between_instances_and_the_bytes_stay_the_same() {
        let sp = specs(&["count", "sum(.v)"]);
        let max = 16;
        // One instance with every key, and three that each hold the keys of their groups.
        let mut one = Keyed::new(&sp);
        let mut three: Vec<Keyed> = (0..3).map(|_| Keyed::new(&sp)).collect();
        for i in 0..400i64 {
            let key = Value::str(&format!("k{}", (i * 7919) % 97));
            let g = key_group(&key, max);
            fold(&mut one, &sp, key.clone(), 0, &Value::Int(i));
            fold(
                &mut three[instance_of(g, 3, max)],
                &sp,
                key,
                0,
                &Value::Int(i),
            );
        }
        let bytes = one.rows().encode(max, false, 7);
        let parts: Vec<&Rows> = three.iter().map(|k| k.rows()).collect();
        assert_eq!(text(&encode_state(&parts, max, false, 7)), text(&bytes));
        // Groups are in increasing order, each group's keys in key order.
        let v = Value::from_json(&bytes).unwrap();
        let Some(Value::Array(groups)) = v.field("key_groups") else {
            panic!("no key groups: {}", text(&bytes))
        };
        assert!(
            groups.len() > 8,
            "97 keys in only {} of 16 groups",
            groups.len()
        );
        // Into 1, 2, 5 and 16 instances, and back out: the same bytes, every key where it
        // belongs.
        for n in [1usize, 2, 5, 16] {
            let mut parts: Vec<Keyed> = (0..n).map(|_| Keyed::new(&sp)).collect();
            let mut refs: Vec<&mut Keyed> = parts.iter_mut().collect();
            assert_eq!(
                decode_state(&mut refs, &sp, &bytes, max).unwrap(),
                (false, 7)
            );
            for (i, p) in parts.iter().enumerate() {
                for r in 0..p.len() {
                    assert_eq!(instance_of(key_group(p.key(r), max), n, max), i);
                }
            }
            let total: usize = parts.iter().map(Keyed::len).sum();
            assert_eq!(total, 97);
            let rows: Vec<&Rows> = parts.iter().map(|k| k.rows()).collect();
            assert_eq!(text(&encode_state(&rows, max, false, 7)), text(&bytes));
        }
        // Another number of key groups is refused: the keys would be in the wrong groups.
        let mut k = Keyed::new(&sp);
        let e = k.decode(&sp, &bytes, 32).unwrap_err();
        assert!(e.contains("16 key groups") && e.contains("32"), "{e}");
        assert!(k.is_empty());
        // Groups out of order, or past the last, are errors.
        for bad in [
            r#"{"max_parallelism":4,"finished":false,"clock":0,"key_groups":[[2,[["a",0,1,1]]],[1,[["b",0,1,1]]]]}"#,
            r#"{"max_parallelism":4,"finished":false,"clock":0,"key_groups":[[4,[["a",0,1,1]]]]}"#,
            r#"{"max_parallelism":4,"finished":false,"clock":0,"key_groups":[[-1,[["a",0,1,1]]]]}"#,
        ] {
            let e = k.decode(&sp, bad.as_bytes(), 4).unwrap_err();
            assert!(e.contains("out of order or not below 4"), "{e}");
        }
    }

    #[test]
    fn rows_added_after_a_decode_merge_into_key_order() {
        let sp = specs(&["count"]);
        let mut k = Keyed::new(&sp);
        let s = br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["b",0,1],["d",0,1],["f",0,1]]]]}"#;
        k.decode(&sp, s, 1).unwrap();
        assert_eq!(k.rows.sorted, 3);
        for key in ["g", "a", "e", "c"] {
            fold(&mut k, &sp, Value::str(key), 0, &Value::Null);
        }
        let keys = results(&k, 0);
        assert_eq!(
            keys,
            ["\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"e\"", "\"f\"", "\"g\""]
        );
        // A removal breaks the order from its row on.
        k.remove(1);
        assert_eq!(k.rows.sorted, 1);
        assert_eq!(results(&k, 0).len(), 6);
    }

    #[test]
    fn the_scanner_reads_values_as_the_parser_does() {
        for t in [
            "0",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-0",
            "01",
            "1.5",
            "-0.0",
            "2.0",
            "1e5",
            "1E+5",
            "-2.5e-3",
            "1.7976931348623157e308",
            "1e400",
            "5e-324",
            "1.",
            ".5",
            "-",
            "null",
            "true",
            "false",
            "[]",
            "[1,[2,[]],\"a\"]",
            "[1,]",
            "[1 ,2]",
            r#""a\"b""#,
            r#""é""#,
            r#"{"a":[1]}"#,
            "[null,true,3.25]",
        ] {
            let mut c = Scan {
                text: t,
                b: t.as_bytes(),
                i: 0,
                depth: 0,
            };
            let fast = c.value().filter(|_| c.i == t.len());
            let want = Value::from_json(t.as_bytes()).ok();
            match (&fast, &want) {
                (Some(a), Some(b)) => assert_eq!(a.to_json_string(), b.to_json_string(), "{t}"),
                (Some(a), None) => panic!("{t}: the scanner read {a:?}, the parser nothing"),
                // Not read here: the parser decides, and a value the parser refuses too is
                // an error either way.
                _ => {}
            }
            if let (Some(Value::Float(a, _)), Some(Value::Float(b, _))) = (&fast, &want) {
                assert_eq!(a.to_bits(), b.to_bits(), "{t}");
            }
        }
        // Deeply nested values are read by the parser past a depth, not down this stack.
        let deep = format!(
            "{{\"max_parallelism\":1,\"finished\":false,\"clock\":0,\"key_groups\":[[0,[[\"a\",0,{}1{}]]]]}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        let sp = specs(&["max(.v)"]);
        let mut k = Keyed::new(&sp);
        k.decode(&sp, deep.as_bytes(), 1).unwrap();
        assert_eq!(text(&k.rows().encode(1, false, 0)), deep);
    }

    proptest! {
        /// Doubles as the encoder writes them read back bit for bit, as the parser reads them.
        #[test]
        fn the_scanner_reads_doubles_as_the_parser_does(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let t = serde_json::to_string(&f).unwrap();
            let mut c = Scan { text: &t, b: t.as_bytes(), i: 0, depth: 0 };
            let fast = c.value();
            let want = Value::from_json(t.as_bytes()).unwrap();
            match (fast, want) {
                (Some(Value::Float(a, _)), Value::Float(b, _)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => prop_assert!(false, "{}: {:?} / {:?}", t, a, b),
            }
        }
    }

    fn key_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[ab\"\\\\é\u{1}\n]{0,9}".prop_map(|s| Value::str(&s)),
            "[a-z]{6,12}".prop_map(|s| Value::str(&s)),
            (-3i64..3).prop_map(Value::Int),
            (-3i64..3).prop_map(|i| Value::float(i as f64 + 0.5)),
            Just(Value::float(1.0)),
            Just(Value::Null),
            Just(Value::Bool(true)),
            Just(json(r#"[1,"a"]"#)),
            Just(json(r#"{"b":1,"a":2}"#)),
        ]
    }

    fn arg_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            (-5i64..5).prop_map(Value::Int),
            Just(Value::Int(i64::MAX)),
            (-5i64..5).prop_map(|i| Value::float(i as f64 / 4.0)),
            // Not -0.0: the encoding has always written it as 0 in a value (not in a sum),
            // so count_distinct of {0, -0.0} reads back as {0}, before as now.
            Just(Value::float(1e300)),
            Just(Value::Null),
            "[xy]{0,2}".prop_map(|s| Value::str(&s)),
            Just(json(r#"[1,"a"]"#)),
        ]
    }

    proptest! {
        /// Whatever the keys and values: encoding, reading back and encoding again gives the
        /// same bytes and the same results, and rows come out in jq's order.
        #[test]
        fn encode_decode_round_trip(
            recs in proptest::collection::vec((key_strategy(), -3i64..3, arg_strategy()), 0..60),
            ttl in any::<bool>(),
        ) {
            let sp = specs(&ALL);
            let mut k = Keyed::new(&sp);
            for (key, t, v) in &recs {
                fold(&mut k, &sp, key.clone(), if ttl { *t } else { 0 }, v);
            }
            let mut keys: Vec<Value> = k.rows.keys.clone();
            keys.sort();
            let order: Vec<Value> =
                k.rows().sorted_rows().iter().map(|&r| k.key(r as usize).clone()).collect();
            prop_assert_eq!(order, keys);
            let bytes = k.rows().encode(1, false, 42);
            let s = text(&bytes);
            let mut d = Keyed::new(&sp);
            prop_assert_eq!(d.decode(&sp, &bytes, 1).unwrap(), (false, 42));
            prop_assert_eq!(text(&d.rows().encode(1, false, 42)), s.clone());
            prop_assert_eq!(results(&d, sp.len()), results(&k, sp.len()));
        }
    }
}
