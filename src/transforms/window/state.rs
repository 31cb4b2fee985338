//! A window's checkpoint state, per key group, written and read by one instance or several
//! (see `transforms::parallel`): the same bytes whatever the parallelism.

use super::{Window, Windows};
use crate::error::Error;
use crate::time::window::Assigner;
use crate::transforms::aggs::{Acc, Func};
use crate::transforms::keygroup::{check_max, key_group, next_group, read_levels};
use crate::value::Value;
use serde::Deserialize;
use serde_json::value::RawValue;
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
/// What the state's own levels hold; each window is read on its own, so a key may nest as
/// deep as a record's value (`aggs::MAX_KEPT_NESTING`) whatever wraps it here.
#[derive(Deserialize)]
struct State<'a> {
    max_parallelism: i64,
    finished: bool,
    wm: i64,
    max_t: Vec<Option<i64>>,
    #[serde(borrow)]
    key_groups: Vec<(i64, Group<'a>)>,
}

#[derive(Deserialize)]
struct Group<'a> {
    #[serde(borrow)]
    open: Vec<&'a RawValue>,
    #[serde(borrow)]
    fired: Vec<&'a RawValue>,
}

pub(super) fn decode_state(parts: &mut [&mut Window], state: &[u8]) -> Result<(), Error> {
    let bad = |m: String| Error::runtime(format!("window state in checkpoint: {m}"));
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let max = first.max;
    let funcs: Vec<Func> = first.specs.iter().map(|s| s.func).collect();
    let st: State = read_levels(state).map_err(bad)?;
    check_max(st.max_parallelism, max, None).map_err(bad)?;
    let dec = |items: &[&RawValue], m: &mut Windows| -> Result<(), Error> {
        for it in items {
            let Value::Array(p) = Value::from_json(it.get().as_bytes()).map_err(bad)? else {
                return Err(bad("a window is not an array".into()));
            };
            if p.len() != funcs.len() + 3 {
                return Err(bad(
                    "a window does not match the pipeline's aggregates".into()
                ));
            }
            let (Value::Int(end), Value::Int(start)) = (&p[0], &p[1]) else {
                return Err(bad("a window's end and start are not integers".into()));
            };
            let mut accs = Vec::with_capacity(funcs.len());
            for (func, a) in funcs.iter().zip(p[3..].iter()) {
                accs.push(Acc::decode(*func, a).map_err(bad)?);
            }
            m.insert((*end, *start, p[2].clone()), accs);
        }
        Ok(())
    };
    let n = parts.len();
    for p in parts.iter_mut() {
        p.finished = st.finished;
        p.wm = st.wm;
        p.max_t = st.max_t.clone();
        p.open.clear();
        p.fired.clear();
        p.sessions.clear();
    }
    let mut prev: Option<i64> = None;
    for (g, wins) in &st.key_groups {
        let part = &mut *parts[next_group(*g, &mut prev, max, n, None).map_err(bad)?];
        dec(&wins.open, &mut part.open)?;
        dec(&wins.fired, &mut part.fired)?;
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
