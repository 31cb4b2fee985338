//! A window's checkpoint state, per key group, written and read by one instance or several
//! (see `transforms::parallel`): the same bytes whatever the parallelism.

use super::{Window, Windows};
use crate::error::Error;
use crate::time::window::Assigner;
use crate::transforms::aggs::{Acc, Func};
use crate::transforms::keygroup::{instance_of, key_group};
use crate::value::Value;
use std::collections::HashMap;

/// A window's state, written by its instances together (`parts`, in order; one without
/// parallelism): `{"max_parallelism":M,"finished":..,"wm":..,"max_t":[..],"key_groups":
/// [[g,{"open":[[end,start,key,acc,...],...],"fired":[...]}],...]}`, non-empty key groups in
/// increasing order, windows in firing order within each. The instances own increasing
/// ranges of groups, so their groups follow one another.
pub(super) fn encode_state(parts: &[&Window]) -> Vec<u8> {
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    let max = first.max;
    let mut out = format!(
        "{{\"max_parallelism\":{max},\"finished\":{},\"wm\":{},\"max_t\":{},\"key_groups\":[",
        first.finished,
        first.wm,
        serde_json::to_string(&first.max_t).unwrap_or_else(|_| "[]".into())
    )
    .into_bytes();
    let mut first_group = true;
    for p in parts {
        let open = p.open.sorted();
        let fired = p.fired.sorted();
        // (group, fired?, index), stably sorted by group: firing order within each.
        let mut all: Vec<(u32, bool, usize)> = open
            .iter()
            .enumerate()
            .map(|(i, w)| (key_group(w.2, max), false, i))
            .chain(
                fired
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (key_group(w.2, max), true, i)),
            )
            .collect();
        all.sort_by_key(|x| (x.0, x.1));
        let mut i = 0;
        while i < all.len() {
            let g = all[i].0;
            if !first_group {
                out.push(b',');
            }
            first_group = false;
            out.extend_from_slice(format!("[{g},{{\"open\":[").as_bytes());
            let mut sep = false;
            while i < all.len() && all[i].0 == g && !all[i].1 {
                write_window(&mut out, open[all[i].2], &mut sep);
                i += 1;
            }
            out.extend_from_slice(b"],\"fired\":[");
            sep = false;
            while i < all.len() && all[i].0 == g {
                write_window(&mut out, fired[all[i].2], &mut sep);
                i += 1;
            }
            out.extend_from_slice(b"]}]");
        }
    }
    out.extend_from_slice(b"]}");
    out
}

fn write_window(out: &mut Vec<u8>, w: (i64, i64, &Value, &Vec<Acc>), sep: &mut bool) {
    if *sep {
        out.push(b',');
    }
    *sep = true;
    out.extend_from_slice(format!("[{},{},", w.0, w.1).as_bytes());
    w.2.write_json(out);
    for a in w.3 {
        out.push(b',');
        a.encode(out);
    }
    out.push(b']');
}

/// Loads a window's state into the instances `parts` (one without parallelism), whatever
/// parallelism wrote it: each takes the key groups it owns.
pub(super) fn decode_state(parts: &mut [&mut Window], state: &[u8]) -> Result<(), Error> {
    let bad = |m: String| Error::runtime(format!("window state in checkpoint: {m}"));
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let max = first.max;
    let funcs: Vec<Func> = first.specs.iter().map(|s| s.func).collect();
    let v = Value::from_json(state).map_err(bad)?;
    let f = |k: &str| v.field(k).cloned().unwrap_or(Value::Null);
    match f("max_parallelism") {
        Value::Int(m) if m == max as i64 => {}
        Value::Int(m) => {
            return Err(bad(format!(
                "the state has {m} key groups (max_parallelism), the pipeline {max}: keys would hash into other groups"
            )))
        }
        _ => return Err(bad("no max_parallelism".into())),
    }
    let finished = f("finished").truthy();
    let wm = match f("wm") {
        Value::Int(i) => i,
        other => other.as_f64().map(|x| x as i64).unwrap_or(i64::MIN),
    };
    let max_t: Vec<Option<i64>> = match f("max_t") {
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::Int(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let dec = |x: Option<&Value>, m: &mut Windows| -> Result<(), Error> {
        let Some(Value::Array(items)) = x else {
            return Ok(());
        };
        for it in items {
            let Value::Array(p) = it else {
                return Err(bad("a window is not an array".into()));
            };
            if p.len() != funcs.len() + 3 {
                return Err(bad(
                    "a window does not match the pipeline's aggregates".into()
                ));
            }
            let end = p[0].as_f64().ok_or_else(|| bad("end".into()))? as i64;
            let start = p[1].as_f64().ok_or_else(|| bad("start".into()))? as i64;
            let mut accs = Vec::with_capacity(funcs.len());
            for (func, a) in funcs.iter().zip(p[3..].iter()) {
                accs.push(Acc::decode(*func, a).map_err(bad)?);
            }
            m.insert((end, start, p[2].clone()), accs);
        }
        Ok(())
    };
    let n = parts.len();
    for p in parts.iter_mut() {
        p.finished = finished;
        p.wm = wm;
        p.max_t = max_t.clone();
        p.open.clear();
        p.fired.clear();
        p.sessions.clear();
    }
    let Value::Array(groups) = f("key_groups") else {
        return Err(bad("no key_groups".into()));
    };
    let mut prev: Option<i64> = None;
    for entry in &groups {
        let (g, wins) = match entry {
            Value::Array(e) if e.len() == 2 => match (&e[0], &e[1]) {
                (Value::Int(g), w @ Value::Object(_)) => (*g, w),
                _ => return Err(bad("a key group is not [number, {...}]".into())),
            },
            _ => return Err(bad("a key group is not [number, {...}]".into())),
        };
        if g < 0 || g >= max as i64 || prev.is_some_and(|p| p >= g) {
            return Err(bad(format!(
                "key group {g} is out of order or not below {max}"
            )));
        }
        prev = Some(g);
        let part = &mut *parts[instance_of(g as u32, n, max)];
        dec(wins.field("open"), &mut part.open)?;
        dec(wins.field("fired"), &mut part.fired)?;
    }
    for p in parts.iter_mut() {
        if let Assigner::Session { .. } = p.assigner {
            let mut sessions: HashMap<Value, Vec<(i64, i64)>> = HashMap::new();
            for (end, start, key, _) in p.open.sorted().into_iter().chain(p.fired.sorted()) {
                sessions.entry(key.clone()).or_default().push((start, end));
            }
            p.sessions = sessions;
        }
    }
    Ok(())
}
