//! Judging a line on the pushed-down filter's own fields before decoding it: the decode
//! pool's workers drop most lines of a selective filter without building their records.

use crate::sources::flat_json;
use crate::sources::formats::trim_ascii;
use crate::value::Value;

/// The pushed-down filter's own fields, for a worker to judge a line on them alone before
/// building its record: most lines of a selective filter are dropped, and for those reading
/// a few fields without building anything costs far less than decoding the projection.
/// The filter reads no other field (`Expr::input_fields`), so on a record of just these it
/// decides as on the whole projection; only a plain `false` drops a line early, and anything
/// else (true, an error, a line the scanner leaves to sonic-rs) is decoded as before.
///
/// When most lines pass, judging them first is pure extra work (a pass-all filter ran 18%
/// slower), so a worker measures what the judging drops and stops judging for a while when it
/// drops less than a third of the lines; which lines are dropped never depends on it.
pub(super) struct Prefilter {
    pub(super) fields: crate::value::Projector,
    /// Reused for every line: the filter's fields of the line at hand.
    pub(super) record: Value,
    /// Lines judged and dropped since the last look at the rate.
    pub(super) judged: u64,
    pub(super) dropped: u64,
    /// Jobs to decode without judging before judging is tried again, and how many the next
    /// rest lasts (doubling while judging keeps not paying).
    pub(super) resting: u32,
    pub(super) rest: u32,
    /// The filter compares its one field with a literal (`Expr::field_test`): it is decided
    /// on the field's value, without filling `record`.
    pub(super) field_test: bool,
    /// With a projection that wants every one of the filter's fields whole: the line is read
    /// once, and a kept line's record is built from what that pass noted (see
    /// `flat_json::scan_marks`).
    pub(super) one_pass: Option<OnePass>,
}

/// The projection's tree, which of its top-level names are the filter's fields (their slot),
/// and the marks of the line at hand.
pub(super) struct OnePass {
    tree: flat_json::MarkTree,
    fields: Vec<Option<usize>>,
    marks: flat_json::Marks,
}

/// What judging a line found.
pub(super) enum Judged {
    /// The filter drops it.
    Drop,
    /// The filter keeps it: its record, as `decode_jsonl` with the projection builds it.
    Keep(Value),
    /// Not decided here: decode the line and run the filter as usual.
    Unknown,
}

/// Lines judged before the drop rate is looked at, and the jobs of a worker's first and
/// longest rests.
pub(super) const PREFILTER_SAMPLE: u64 = 4096;
pub(super) const PREFILTER_REST: u32 = 16;
pub(super) const PREFILTER_REST_MAX: u32 = 1024;

impl Prefilter {
    /// For `filter`, on lines decoded with `projector` (`None`: whole records).
    pub(super) fn new(
        filter: &crate::expr::Expr,
        projector: Option<&crate::value::Projector>,
    ) -> Option<Prefilter> {
        let fields = filter.input_fields()?;
        if fields.is_empty() || fields.len() > 8 {
            return None;
        }
        let field_test = filter
            .field_test()
            .is_some_and(|f| fields[..] == [f.clone()]);
        let one_pass = projector.and_then(|p| {
            let tree = flat_json::MarkTree::new(p.tree())?;
            let mut slot = vec![None; tree.names().len()];
            for (k, f) in fields.iter().enumerate() {
                let n = tree.names().iter().position(|x| x == f)?;
                if !tree.whole(n) {
                    return None;
                }
                slot[n] = Some(k);
            }
            Some(OnePass {
                tree,
                fields: slot,
                marks: flat_json::Marks::default(),
            })
        });
        Some(Prefilter {
            field_test,
            one_pass,
            fields: crate::value::Projector::new(&fields),
            record: Value::Object(crate::value::Map::with_capacity(8)),
            judged: 0,
            dropped: 0,
            resting: 0,
            rest: PREFILTER_REST,
        })
    }

    /// Whether to judge the lines of the next job.
    pub(super) fn judging(&mut self) -> bool {
        if self.resting > 0 {
            self.resting -= 1;
            return false;
        }
        if self.judged >= PREFILTER_SAMPLE {
            let worth = self.dropped * 3 >= self.judged;
            self.judged = 0;
            self.dropped = 0;
            if !worth {
                self.resting = self.rest;
                self.rest = (self.rest * 2).min(PREFILTER_REST_MAX);
                return false;
            }
            self.rest = PREFILTER_REST;
        }
        true
    }

    /// True when the filter drops `line` on its own fields.
    #[cfg(test)]
    pub(super) fn drops(&mut self, line: &[u8], filter: &crate::expr::Expr) -> bool {
        matches!(self.judge(line, filter), Judged::Drop)
    }

    /// Judges `line` on the filter's own fields; with `one_pass`, a kept line comes back
    /// built.
    #[inline]
    pub(super) fn judge(&mut self, line: &[u8], filter: &crate::expr::Expr) -> Judged {
        let line = trim_ascii(line);
        if line.is_empty() {
            return Judged::Unknown;
        }
        let (fields, lens) = self.fields.wanted();
        let mut slots: [Option<flat_json::Scalar<'_>>; 8] = [None; 8];
        let slots = &mut slots[..fields.len()];
        let text = match &mut self.one_pass {
            Some(o) => match flat_json::scan_marks(line, &o.tree, &o.fields, &mut o.marks, slots) {
                Some(text) => Some(text),
                None => return Judged::Unknown,
            },
            None => {
                if flat_json::scan_fields(line, fields, lens, slots).is_none() {
                    return Judged::Unknown;
                }
                None
            }
        };
        let holds = if self.field_test {
            let v = slots[0].map(flat_json::Scalar::to_value);
            filter.field_test_holds(v.as_ref())
        } else {
            let Value::Object(m) = &mut self.record else {
                return Judged::Unknown;
            };
            m.clear();
            for (f, s) in fields.iter().zip(slots.iter()) {
                if let Some(s) = s {
                    m.push_unique(f.clone(), s.to_value());
                }
            }
            filter.eval_bool(&self.record).ok()
        };
        self.judged += 1;
        match holds {
            Some(false) => {
                self.dropped += 1;
                Judged::Drop
            }
            // An error is the filter's to report, on the record decoded the usual way.
            None => Judged::Unknown,
            Some(true) => {
                let built = match (text, &self.one_pass) {
                    (Some(text), Some(o)) => flat_json::build_marked(text, &o.tree, &o.marks),
                    _ => None,
                };
                built.map_or(Judged::Unknown, Judged::Keep)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter that compares one field with a literal is decided on the field alone, and
    /// drops exactly the lines the whole record's evaluation gives `false` for: every kind of
    /// value (absent, null, booleans, integers, floats, a number kept as text, strings)
    /// against literals of every kind and every comparison.
    #[test]
    fn a_field_test_drops_what_the_record_would() {
        let values = [
            "",
            "null",
            "true",
            "false",
            "0",
            "-0",
            "399",
            "400",
            "401",
            "1.5",
            "2.50",
            "1e2",
            "\"x\"",
            "\"PullRequestEvent\"",
            "\"\"",
        ];
        let filters = [
            ".a == 1",
            ".a >= 400",
            ".a < 400",
            ".a != null",
            ".a == true",
            ".a > 1.5",
            ".a <= \"x\"",
            ".a == \"PullRequestEvent\"",
            ".a > false",
            ".a == 2.5",
            "400 <= .a",
        ];
        let mut tested = 0;
        for src in filters {
            let filter = crate::expr::Expr::compile(src).unwrap();
            assert!(filter.field_test().is_some(), "{src}");
            let mut p = Prefilter::new(&filter, None).unwrap();
            assert!(p.field_test, "{src}");
            for v in values {
                let line = if v.is_empty() {
                    "{\"b\":1}".to_string()
                } else {
                    format!("{{\"b\":1,\"a\":{v}}}")
                };
                let record = crate::sources::formats::decode_jsonl(line.as_bytes(), None)
                    .unwrap()
                    .unwrap();
                let want = matches!(filter.eval_bool(&record), Ok(false));
                assert_eq!(p.drops(line.as_bytes(), &filter), want, "{src} on {line}");
                tested += usize::from(want);
            }
        }
        assert!(tested > 40, "only {tested} drops");
        // Two fields, or a path: judged on a record as before.
        for src in [".a == 1 and .b == 1", ".a.b == 1"] {
            let filter = crate::expr::Expr::compile(src).unwrap();
            assert!(
                !Prefilter::new(&filter, None).is_some_and(|p| p.field_test),
                "{src}"
            );
            assert_eq!(filter.field_test_holds(None), None, "{src}");
        }
    }

    /// Judging a line first stops while it drops less than a third of the lines judged, for
    /// rests that double while it keeps not paying, and starts again when it pays.
    #[test]
    fn a_worker_stops_judging_lines_first_while_it_does_not_pay() {
        let filter = crate::expr::Expr::compile(".a == 1").unwrap();
        let mut p = Prefilter::new(&filter, None).unwrap();
        let judge = |p: &mut Prefilter, line: &[u8], n: u64| {
            for _ in 0..n {
                p.drops(line, &filter);
            }
        };
        assert!(p.judging());
        // All pass (a == 1): not worth it; rests of 16, then 32 jobs.
        judge(&mut p, b"{\"a\":1}", PREFILTER_SAMPLE);
        for (i, rest) in [PREFILTER_REST, PREFILTER_REST * 2].into_iter().enumerate() {
            // The job that finds it not worth it, then the rest.
            assert!(!p.judging());
            for _ in 0..rest {
                assert!(!p.judging());
            }
            assert!(p.judging(), "after a rest of {rest}");
            if i == 0 {
                judge(&mut p, b"{\"a\":1}", PREFILTER_SAMPLE);
            }
        }
        // Half dropped: worth it again, and the next rest is back to the first length.
        judge(&mut p, b"{\"a\":2}", PREFILTER_SAMPLE / 2);
        judge(&mut p, b"{\"a\":1}", PREFILTER_SAMPLE / 2);
        assert!(p.judging());
        assert_eq!(p.rest, PREFILTER_REST);
        // A line the scanner leaves alone is not judged at all.
        let before = p.judged;
        assert!(!p.drops(b"{\"a\":[2]}", &filter));
        assert_eq!(p.judged, before);
    }
}
