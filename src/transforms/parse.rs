//! `parse`: turns a text field into fields with a regex's named groups (a group that did not
//! take part in the match becomes null), or with a preset log format (`presets`). A record
//! whose field does not match is bad input.

use crate::runtime::message::Batch;
use crate::runtime::stage::{Operator, Output, StageResult};
use crate::value::{Str, Value};
use regex::Regex;

pub struct Parse {
    pub field: String,
    pub regex: Regex,
    preset: Option<super::presets::Preset>,
    /// The fields a preset made of the current record.
    parsed: Vec<(Str, Value)>,
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
            preset: None,
            parsed: Vec::new(),
            names,
            values: Vec::new(),
        }
    }

    pub fn with_preset(field: String, preset: super::presets::Preset) -> Parse {
        // The regex is unused with a preset; an empty one costs nothing.
        let mut p = Parse::new(field, Regex::new("").expect("the empty regex compiles"));
        p.preset = Some(preset);
        p
    }

    /// `process` for a preset.
    fn process_preset(&mut self, batch: Batch, out: &mut Output) -> StageResult {
        let Some(preset) = &self.preset else {
            return Ok(());
        };
        for mut r in batch.records {
            let parsed = match r.value.field(&self.field) {
                Some(Value::Str(text)) => preset.parse(text, &mut self.parsed),
                other => Err(not_text(&self.field, other)),
            };
            if let Err(msg) = parsed {
                out.bad(r.origin, &format!("parse: {msg}"), None, Some(r.value))?;
                continue;
            }
            if let Value::Object(m) = &mut r.value {
                for (name, v) in self.parsed.drain(..) {
                    m.insert(name, v);
                }
            }
            out.push(r);
        }
        Ok(())
    }
}

/// Why `field` of a record is not text to parse.
fn not_text(field: &str, v: Option<&Value>) -> String {
    match v {
        Some(other) => format!("field `{field}` is {}, not a string", other.type_name()),
        None => format!("the record has no field `{field}`"),
    }
}

impl Operator for Parse {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if self.preset.is_some() {
            return self.process_preset(batch, out);
        }
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
                other => Err(not_text(&self.field, other)),
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
