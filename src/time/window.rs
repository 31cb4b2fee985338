//! Window assignment: which windows an event time belongs to, for tumbling and sliding windows
//! (aligned to the epoch, as in Flink), and the session-window merge rule.

/// Windows `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

impl Assigner {
    /// The windows that contain `t`, oldest first (tumbling and sliding only).
    pub fn assign(&self, t: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            // Bounds saturate: a time near either end of `i64` (a huge epoch number) must
            // not overflow.
            Assigner::Tumbling { size } => {
                let start = t.saturating_sub(t.rem_euclid(size));
                out.push((start, start.saturating_add(size)));
            }
            Assigner::Sliding { size, slide } => {
                let last = t.saturating_sub(t.rem_euclid(slide));
                let mut start = last;
                // Every slide-aligned start in (t - size, t].
                while start > t.saturating_sub(size) {
                    start = start.saturating_sub(slide);
                }
                start += slide;
                while start <= last {
                    out.push((start, start.saturating_add(size)));
                    match start.checked_add(slide) {
                        Some(s) => start = s,
                        None => break,
                    }
                }
            }
            Assigner::Session { gap } => out.push((t, t.saturating_add(gap))),
        }
    }
}

/// Two session windows merge when they overlap or touch (Flink's rule).
pub fn sessions_meet(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_sliding() {
        let mut v = Vec::new();
        Assigner::Tumbling { size: 60 }.assign(125, &mut v);
        assert_eq!(v, [(120, 180)]);
        Assigner::Tumbling { size: 60 }.assign(-1, &mut v);
        assert_eq!(v, [(-60, 0)]);
        Assigner::Sliding {
            size: 30,
            slide: 10,
        }
        .assign(25, &mut v);
        assert_eq!(v, [(0, 30), (10, 40), (20, 50)]);
        Assigner::Sliding {
            size: 30,
            slide: 10,
        }
        .assign(20, &mut v);
        assert_eq!(v, [(0, 30), (10, 40), (20, 50)]);
        Assigner::Sliding {
            size: 30,
            slide: 10,
        }
        .assign(29, &mut v);
        assert_eq!(v, [(0, 30), (10, 40), (20, 50)]);
        Assigner::Sliding {
            size: 30,
            slide: 10,
        }
        .assign(30, &mut v);
        assert_eq!(v, [(10, 40), (20, 50), (30, 60)]);
        // Times at the ends of i64 (epoch numbers times 1000, saturated) do not overflow; a
        // sliding window may then have no window for them.
        Assigner::Tumbling { size: 60 }.assign(i64::MAX, &mut v);
        assert_eq!(v, [(i64::MAX - i64::MAX % 60, i64::MAX)]);
        Assigner::Tumbling { size: 60 }.assign(i64::MIN, &mut v);
        assert_eq!(v, [(i64::MIN, i64::MIN + 60)]);
        for t in [i64::MIN, i64::MAX] {
            Assigner::Sliding {
                size: 30,
                slide: 10,
            }
            .assign(t, &mut v);
            assert!(v.len() <= 3, "{t}: {v:?}");
        }
        // A slide larger than the size leaves gaps: 15 is in no window.
        Assigner::Sliding {
            size: 10,
            slide: 20,
        }
        .assign(15, &mut v);
        assert!(v.is_empty());
    }

    #[test]
    fn sessions() {
        assert!(sessions_meet((0, 10), (10, 20)));
        assert!(sessions_meet((5, 15), (0, 10)));
        assert!(!sessions_meet((0, 10), (11, 20)));
    }
}
