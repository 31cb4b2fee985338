//! `parse`: turns a text field into fields with a regex's named groups (a group that did not
//! take part in the match becomes null). A record whose field does not match is bad input.

use crate::runtime::message::Batch;
use crate::runtime::stage::{Operator, Output, StageResult};
use crate::value::{Str, Value};
use regex::Regex;

pub struct Parse {
    pub field: String,
    pub regex: Regex,
    names: Vec<(usize, Str)>,
}

impl Parse {
    pub fn new(field: String, regex: Regex) -> Parse {
        let names = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, Str::new(n))))
            .collect();
        Parse {
            field,
            regex,
            names,
        }
    }
}

impl Operator for Parse {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        let mut locs = self.regex.capture_locations();
        for mut r in batch.records {
            let text = match r.value.field(&self.field) {
                Some(Value::Str(s)) => s.clone(),
                Some(other) => {
                    let msg = format!(
                        "field `{}` is {}, not a string",
                        self.field,
                        other.type_name()
                    );
                    out.bad(r.origin, &msg, None, Some(r.value))?;
                    continue;
                }
                None => {
                    let msg = format!("the record has no field `{}`", self.field);
                    out.bad(r.origin, &msg, None, Some(r.value))?;
                    continue;
                }
            };
            if self.regex.captures_read(&mut locs, &text).is_none() {
                let msg = format!("field `{}` does not match the regex", self.field);
                out.bad(r.origin, &msg, None, Some(r.value))?;
                continue;
            }
            if let Value::Object(m) = &mut r.value {
                for (i, name) in &self.names {
                    let v = match locs.get(*i) {
                        Some((a, b)) => Value::str(&text[a..b]),
                        None => Value::Null,
                    };
                    m.insert(name.clone(), v);
                }
            }
            out.push(r);
        }
        Ok(())
    }
}
