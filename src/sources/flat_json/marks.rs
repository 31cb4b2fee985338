//! One pass for a pushed-down filter and the projection after it. A parse worker used to
//! read a line twice when its filter kept it: once for the filter's fields, then again, in
//! full, to build the projected record. Here the first pass also notes where each wanted
//! value lies (`scan_marks`), and a kept line's record is built from those places alone
//! (`build_marked`), so the bytes between them are read once. The record is the one
//! `parse_flat` builds with the same `Wanted`: keys in line order, and the same validation
//! (every skipped byte is checked as `parse_flat` checks it). A wanted key that repeats in its
//! object makes the scan give up, and the caller then takes `parse_flat`'s way.

use super::{walk_text, Scalar, Scan};
use crate::value::{find_name, Lens, Map, Str, Value, Wanted};

/// The projection's wanted keys (`Wanted`), each with a number (`base` + its position), so a
/// scan can note where each wanted value is without building it.
#[derive(Debug, Clone)]
pub struct MarkTree {
    names: Vec<Str>,
    lens: Lens,
    base: usize,
    subs: Vec<Option<MarkTree>>,
    /// Wanted keys here and below.
    count: usize,
}

/// Where one wanted value lies in the line: `order` is when its key was met (0: not met), and
/// `object` is set when it is an object whose own wanted keys were marked in turn.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    order: u32,
    start: usize,
    object: bool,
}

/// The marks of one line, reused from line to line.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    marks: Vec<Mark>,
    met: u32,
}

impl MarkTree {
    /// `None` when a level wants more than 64 keys (`parse_flat` gives up on those lines).
    pub fn new(w: &Wanted) -> Option<MarkTree> {
        let mut next = 0;
        MarkTree::level(w, &mut next)
    }

    fn level(w: &Wanted, next: &mut usize) -> Option<MarkTree> {
        if w.names.len() > 64 {
            return None;
        }
        let base = *next;
        *next += w.names.len();
        let subs = w
            .subs
            .iter()
            .map(|s| match s {
                Some(s) => MarkTree::level(s, next).map(Some),
                None => Some(None),
            })
            .collect::<Option<Vec<_>>>()?;
        let count = w.names.len() + subs.iter().flatten().map(|t| t.count).sum::<usize>();
        Some(MarkTree {
            names: w.names.clone(),
            lens: w.lens.clone(),
            base,
            subs,
            count,
        })
    }

    /// The top-level names.
    pub fn names(&self) -> &[Str] {
        &self.names
    }

    /// Whether top-level name `n` is wanted whole.
    pub fn whole(&self, n: usize) -> bool {
        self.subs.get(n).is_some_and(Option::is_none)
    }

    fn mark(&self, marks: &mut Marks, n: usize, start: usize) -> Option<()> {
        let m = marks.marks.get_mut(self.base + n)?;
        if m.order != 0 {
            return None;
        }
        marks.met += 1;
        *m = Mark {
            order: marks.met,
            start,
            object: false,
        };
        Some(())
    }
}

/// Reads `line` (trimmed) once, validating it as `parse_flat` does: notes where each value
/// `tree` wants lies, and reads the scalar of each top-level name `n` with `fields[n] =
/// Some(k)` into `slots[k]` (such a name is wanted whole). Gives the line's text for
/// `build_marked`. `None` as for `parse_flat`, and also when a wanted key repeats in its
/// object or a field's value is not a scalar: the caller then takes the general way.
pub fn scan_marks<'a>(
    line: &'a [u8],
    tree: &MarkTree,
    fields: &[Option<usize>],
    marks: &mut Marks,
    slots: &mut [Option<Scalar<'a>>],
) -> Option<&'a str> {
    marks.marks.clear();
    marks.marks.resize(tree.count, Mark::default());
    marks.met = 0;
    walk_text(line, |ks, ke, s| {
        let Some(n) = find_name(&s.b[ks..ke], &tree.names, &tree.lens) else {
            return s.skip();
        };
        tree.mark(marks, n, s.i)?;
        if let Some(k) = fields.get(n).copied().flatten() {
            *slots.get_mut(k)? = Some(s.scalar()?);
            return Some(());
        }
        match &tree.subs[n] {
            Some(sub) if s.peek() == Some(b'{') => {
                marks.marks[tree.base + n].object = true;
                s.mark_object(sub, 1, marks)
            }
            _ => s.skip(),
        }
    })
}

impl<'a> Scan<'a> {
    /// The wanted keys of the object opening at the scanner, at `depth`, marked; the others
    /// skipped (validated) as `pruned` reads them, the usual `"key":"text"` without looking
    /// for whitespace (as `skip_object` does: most members of a nested object are that).
    fn mark_object(&mut self, t: &MarkTree, depth: usize, marks: &mut Marks) -> Option<()> {
        let d = depth + 1;
        if self.open(d, b'}')? {
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (start, end, escaped) = self.any_span()?;
            let n = if escaped {
                find_name(self.decoded(start, end)?.as_bytes(), &t.names, &t.lens)
            } else {
                find_name(self.b.get(start..end)?, &t.names, &t.lens)
            };
            match n {
                None => {
                    if !self.text_member()? {
                        self.colon()?;
                        self.skip_member(d)?;
                    }
                }
                Some(n) => {
                    self.colon()?;
                    t.mark(marks, n, self.i)?;
                    match &t.subs[n] {
                        Some(sub) if self.peek() == Some(b'{') => {
                            marks.marks[t.base + n].object = true;
                            self.mark_object(sub, d, marks)?;
                        }
                        _ => self.skip_member(d)?,
                    }
                }
            }
            if self.next_member(b'}')? {
                return Some(());
            }
        }
    }
}

/// The record `parse_flat(line, Some(wanted))` builds, from the marks `scan_marks` left for
/// `text` (that line). `None` only if a marked value fails to build, which the scan has
/// ruled out; the caller then takes the general way.
pub fn build_marked(text: &str, tree: &MarkTree, marks: &Marks) -> Option<Value> {
    build_level(text, tree, marks, 1)
}

/// One object's wanted keys, in the order the line has them; their values are built at
/// `depth`, as `pruned` builds them.
fn build_level(text: &str, t: &MarkTree, marks: &Marks, depth: usize) -> Option<Value> {
    // The names met, in the order they were met (by insertion: there are few). At most 64
    // names a level (`MarkTree::new`).
    let mut met = [0u8; 64];
    let mut k = 0;
    for n in 0..t.names.len() {
        let order = marks.marks.get(t.base + n)?.order;
        if order == 0 {
            continue;
        }
        let mut j = k;
        while j > 0 && marks.marks[t.base + usize::from(met[j - 1])].order > order {
            met[j] = met[j - 1];
            j -= 1;
        }
        met[j] = n as u8;
        k += 1;
    }
    let mut obj = Map::with_capacity(k);
    for &n in &met[..k] {
        let n = usize::from(n);
        let m = marks.marks[t.base + n];
        let v = match &t.subs[n] {
            Some(sub) if m.object => build_level(text, sub, marks, depth + 1)?,
            // A wanted object's value that is not an object is kept whole, as `pruned` keeps
            // it (the scan went into every wanted object, so `object` is set for those).
            _ => Scan {
                t: text,
                b: text.as_bytes(),
                i: m.start,
            }
            .build_any(depth)?,
        };
        obj.push_unique(t.names[n].clone(), v);
    }
    Some(Value::Object(obj))
}
