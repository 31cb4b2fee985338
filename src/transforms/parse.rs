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
    /// The groups of the current record, reused from record to record.
    values: Vec<Value>,
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
            values: Vec::new(),
        }
    }
}

impl Operator for Parse {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        let mut locs = self.regex.capture_locations();
        for mut r in batch.records {
            // The captured groups become new values; the field itself is only borrowed.
            let matched = match r.value.field(&self.field) {
                Some(Value::Str(text)) => {
                    if self.regex.captures_read(&mut locs, text).is_some() {
                        self.values.clear();
                        for (i, _) in &self.names {
                            self.values.push(match locs.get(*i) {
                                Some((a, b)) => Value::str(&text[a..b]),
                                None => Value::Null,
                            });
                        }
                        Ok(())
                    } else {
                        Err(format!("field `{}` does not match the regex", self.field))
                    }
                }
                Some(other) => Err(format!(
                    "field `{}` is {}, not a string",
                    self.field,
                    other.type_name()
                )),
                None => Err(format!("the record has no field `{}`", self.field)),
            };
            if let Err(msg) = matched {
                out.bad(r.origin, &msg, None, Some(r.value))?;
                continue;
            }
            if let Value::Object(m) = &mut r.value {
                for ((_, name), v) in self.names.iter().zip(self.values.drain(..)) {
                    m.insert(name.clone(), v);
                }
            }
            out.push(r);
        }
        Ok(())
    }
}
