//! The `generate` source: synthetic access-log records for demos and benchmarks. Record `n` is
//! a pure function of `(seed, n)`, so the checkpointed state is just the sequence number.

use super::{ReadStatus, Source};
use crate::error::Error;
use crate::pipeline::spec::AtEnd;
use crate::runtime::message::{Origin, Record};
use crate::runtime::stage::{Output, StageResult};
use crate::value::{Map, Str, Value};
use std::time::{Duration, Instant};

const PATHS: &[&str] = &[
    "/",
    "/login",
    "/api/items",
    "/api/orders",
    "/static/app.js",
    "/search",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT"];
/// 2026-01-01T00:00:00Z
const BASE_SECONDS: i64 = 1_767_225_600;

pub struct Generate {
    pub node: usize,
    pub count: Option<u64>,
    pub rate: Option<f64>,
    pub seed: u64,
    pub keys: u64,
    pub at_end: AtEnd,
    pub next: u64,
    started: Instant,
    start_seq: u64,
}

impl Generate {
    pub fn new(
        node: usize,
        count: Option<u64>,
        rate: Option<f64>,
        seed: u64,
        keys: u64,
        at_end: AtEnd,
        next: u64,
    ) -> Generate {
        Generate {
            node,
            count,
            rate,
            seed,
            keys: keys.max(1),
            at_end,
            next,
            started: Instant::now(),
            start_seq: next,
        }
    }

    pub fn record(&self, n: u64) -> Value {
        let r = splitmix(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let r2 = splitmix(r);
        // Seconds advance one per ten records, with up to 3 s of disorder.
        let ts = BASE_SECONDS + (n / 10) as i64 - (r % 4) as i64;
        let status = match r2 % 100 {
            0..=79 => 200,
            80..=84 => 301,
            85..=92 => 404,
            93..=97 => 500,
            _ => 503,
        };
        let mut m = Map::with_capacity(8);
        m.push_unique(Str::new("seq"), Value::Int(n as i64));
        m.push_unique(Str::new("ts"), Value::Str(Str::from(rfc3339(ts))));
        m.push_unique(
            Str::new("user"),
            Value::Str(Str::from(format!("u{}", (r >> 16) % self.keys))),
        );
        m.push_unique(
            Str::new("method"),
            Value::str(METHODS[(r2 >> 8) as usize % METHODS.len()]),
        );
        m.push_unique(
            Str::new("path"),
            Value::str(PATHS[(r >> 40) as usize % PATHS.len()]),
        );
        m.push_unique(Str::new("status"), Value::Int(status));
        m.push_unique(Str::new("bytes"), Value::Int(((r2 >> 20) % 50_000) as i64));
        m.push_unique(
            Str::new("latency_ms"),
            Value::Int(((r2 >> 40) % 2_000) as i64),
        );
        Value::Object(m)
    }
}

fn rfc3339(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_string(),
        Err(_) => secs.to_string(),
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Source for Generate {
    fn read(&mut self, n: usize, out: &mut Output) -> StageResult<(usize, ReadStatus)> {
        let mut k = 0;
        if let Some(rate) = self.rate.filter(|r| *r > 0.0) {
            // Pacing only: how many records may exist by now.
            let allowed = self.start_seq + (self.started.elapsed().as_secs_f64() * rate) as u64 + 1;
            if self.next >= allowed {
                std::thread::sleep(Duration::from_millis(5));
                return Ok((0, ReadStatus::Idle));
            }
        }
        while k < n {
            if self.count.is_some_and(|c| self.next >= c) {
                return Ok((k, ReadStatus::Eof));
            }
            let value = self.record(self.next);
            out.push(Record {
                value,
                origin: Origin {
                    source: self.node as u32,
                    file: 0,
                    line: self.next + 1,
                    offset: self.next,
                },
            });
            self.next += 1;
            k += 1;
            if self.rate.is_some() {
                break;
            }
        }
        Ok((k, ReadStatus::More))
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&serde_json::json!({ "next": self.next }))
            .map_err(|e| Error::runtime(e.to_string()))
    }

    fn at_end(&self) -> AtEnd {
        self.at_end
    }
}
