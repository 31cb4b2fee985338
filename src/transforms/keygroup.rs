//! Key groups, as Flink has them: every key of a keyed node (`aggregate`, `window`, `dedup`)
//! hashes into one of `max_parallelism` key groups, and instance `i` of `N` owns a contiguous
//! range of groups. State is checkpointed per key group, so a resume with another `N` hands
//! each new instance whole groups, whoever wrote them; the number of groups is what must not
//! change (it is part of the node's state config).
//!
//! The hash is part of the checkpoint format: it must give the same group for the same key on
//! every machine, in every run and every release. So it is spelt out here (FNV-1a over a
//! canonical encoding of the key, then MurmurHash3's 64-bit finalizer) rather than taken from
//! `Hash`, whose encoding std does not promise to keep, or from a seeded hasher.

use crate::value::Value;
use std::hash::Hasher;
use std::ops::Range;

/// The key group of `key` among `max` (1..=32768) groups.
#[inline]
pub fn key_group(key: &Value, max: u32) -> u32 {
    if max <= 1 {
        return 0;
    }
    (key_hash(key) % max as u64) as u32
}

/// The instance (0..n) that owns key group `g`: Flink's `g * n / max`, so each instance owns
/// a contiguous range of groups and ranges follow instance order.
#[inline]
pub fn instance_of(g: u32, n: usize, max: u32) -> usize {
    (g as u64 * n as u64 / max.max(1) as u64) as usize
}

/// The key groups instance `i` of `n` owns (the inverse of [`instance_of`]).
pub fn groups_of(i: usize, n: usize, max: u32) -> Range<u32> {
    let first = |i: usize| -> u32 {
        // The smallest g with g * n / max >= i, that is g >= i * max / n rounded up.
        ((i as u64 * max as u64).div_ceil(n.max(1) as u64)) as u32
    };
    first(i)..first(i + 1).min(max)
}

/// Checks the number of key groups a state was written with (`found`, at byte `at` when
/// known) against the pipeline's `max`: with another, keys would hash into other groups.
pub fn check_max(found: i64, max: u32, at: Option<usize>) -> Result<(), String> {
    if found != max as i64 {
        return Err(format!(
            "the state has {found} key groups (max_parallelism){}, the pipeline {max}: keys would hash into other groups",
            byte(at)
        ));
    }
    Ok(())
}

/// The instance of `n` that owns key group `g` of a state being read, after checking that
/// groups come in increasing order (`prev`: the one before) and below `max`.
pub fn next_group(
    g: i64,
    prev: &mut Option<i64>,
    max: u32,
    n: usize,
    at: Option<usize>,
) -> Result<usize, String> {
    if g < 0 || g >= max as i64 || prev.is_some_and(|p| p >= g) {
        return Err(format!(
            "key group {g}{} is out of order or not below {max}",
            byte(at)
        ));
    }
    *prev = Some(g);
    Ok(instance_of(g as u32, n, max))
}

fn byte(at: Option<usize>) -> String {
    at.map_or(String::new(), |i| format!(" at byte {i}"))
}

/// Reads the levels a keyed state writes around its keys and values (the node's fields, the
/// key groups), leaving the entries that hold keys as raw text for the caller to read one by
/// one: then a key may nest as deep in a checkpoint as in a record, whatever wraps it. (The
/// nesting is bounded already: every entry was written from values within the limit.)
pub fn read_levels<'a, T: serde::Deserialize<'a>>(state: &'a [u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(state);
    de.disable_recursion_limit();
    let v = T::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

/// A stable 64-bit hash of a key, consistent with `Value`'s equality: `1` and `1.0` are one
/// key, as are `0` and `-0.0`, and an object's fields count in key order.
pub fn key_hash(key: &Value) -> u64 {
    let mut h = fnv::FnvHasher::default();
    feed(key, &mut h);
    fmix64(h.finish())
}

fn feed(v: &Value, h: &mut fnv::FnvHasher) {
    match v {
        Value::Null => h.write(&[0]),
        Value::Bool(false) => h.write(&[1]),
        Value::Bool(true) => h.write(&[2]),
        Value::Int(i) => number(*i as f64, h),
        Value::Float(f, _) => number(*f, h),
        Value::Str(s) => {
            h.write(&[4]);
            h.write(s.as_bytes());
            // The end of the string, so ["ab","c"] and ["a","bc"] differ.
            h.write(&[0xff]);
        }
        Value::Array(a) => {
            h.write(&[5]);
            for x in a {
                feed(x, h);
            }
            h.write(&[0xfe]);
        }
        Value::Object(m) => {
            h.write(&[6]);
            for (k, x) in m.sorted() {
                h.write(k.as_bytes());
                h.write(&[0xff]);
                feed(x, h);
            }
            h.write(&[0xfe]);
        }
    }
}

/// Numbers by their value as a double (how `Value` compares them), with one zero and one NaN.
fn number(f: f64, h: &mut fnv::FnvHasher) {
    let f = if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    };
    h.write(&[3]);
    h.write(&f.to_bits().to_le_bytes());
}

/// MurmurHash3's finalizer: FNV-1a's low bits are weak for short keys, and the group is the
/// hash modulo a power of two.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed_forever() {
        // These numbers are part of the checkpoint format: a change moves keys between key
        // groups and breaks every resume with another parallelism. They were computed apart
        // from this code (FNV-1a 64 and fmix64 written out in Python over the bytes
        // 04 "user1" ff, 03 + 7.0 as a little-endian double, 00).
        let cases = [
            (Value::str("user1"), 0x861c_ec8a_4bf1_1bcb_u64, 75),
            (Value::Int(7), 0x2fbe_acde_b993_dd8b, 11),
            (Value::Float(7.0, None), 0x2fbe_acde_b993_dd8b, 11),
            (Value::Null, 0xb903_4ad3_7056_f5fb, 123),
        ];
        for (v, hash, group) in cases {
            assert_eq!(key_hash(&v), hash, "{}", v.to_json_string());
            assert_eq!(key_group(&v, 128), group, "{}", v.to_json_string());
        }
    }

    #[test]
    fn equal_keys_share_a_group() {
        assert_eq!(key_hash(&Value::Int(3)), key_hash(&Value::Float(3.0, None)));
        assert_eq!(
            key_hash(&Value::Int(0)),
            key_hash(&Value::Float(-0.0, None))
        );
        let a = Value::from_json(br#"{"x":1,"y":[2,"z"]}"#).unwrap();
        let b = Value::from_json(br#"{"y":[2,"z"],"x":1.0}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(key_hash(&a), key_hash(&b));
        let c = Value::from_json(br#"["ab","c"]"#).unwrap();
        let d = Value::from_json(br#"["a","bc"]"#).unwrap();
        assert_ne!(key_hash(&c), key_hash(&d));
    }

    #[test]
    fn instances_own_contiguous_ranges_that_cover_every_group_once() {
        for max in [1u32, 2, 3, 7, 128, 1000, 32768] {
            for n in 1..=9usize.min(max as usize) {
                let mut next = 0;
                for i in 0..n {
                    let r = groups_of(i, n, max);
                    assert_eq!(r.start, next, "max {max} n {n} i {i}");
                    assert!(!r.is_empty(), "max {max} n {n} i {i}: no group");
                    for g in r.clone() {
                        assert_eq!(instance_of(g, n, max), i);
                    }
                    next = r.end;
                }
                assert_eq!(next, max);
            }
        }
    }

    #[test]
    fn keys_spread_over_the_groups() {
        let mut count = [0u32; 128];
        for i in 0..12_800 {
            count[key_group(&Value::str(&format!("user{i}")), 128) as usize] += 1;
        }
        // 100 a group on average; a poor hash leaves groups empty or doubles some.
        assert!(count.iter().all(|&c| (60..=140).contains(&c)), "{count:?}");
    }
}
