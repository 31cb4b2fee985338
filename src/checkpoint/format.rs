//! The checkpoint file: `WEIRCKPT`, a format version, the payload length and a CRC32 of the
//! payload, then the payload (JSON). A file whose length or CRC does not match is never
//! loaded. Node states are embedded as raw JSON written by each node, so writing a checkpoint
//! does not re-encode them.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

pub const MAGIC: &[u8; 8] = b"WEIRCKPT";
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 4;

#[derive(Serialize, Deserialize, Debug)]
pub struct NodeState {
    pub node: String,
    pub state: Box<RawValue>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Checkpoint {
    pub id: u64,
    pub pipeline: String,
    /// Hash of what makes state meaningful (node names, types, wiring, expressions); what a
    /// checkpoint without `state_config` is checked by.
    pub pipeline_hash: String,
    /// Per node, the settings its state depends on (see `runtime::edits`): what lets an
    /// edited pipeline resume node by node. Absent in checkpoints of older weirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_config: Option<BTreeMap<String, serde_json::Value>>,
    /// The `--drop-state` names of the run that wrote it, so that the same command run again
    /// does not drop the state this checkpoint holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// Wall-clock time of writing (for humans; never used for processing).
    pub created_ms: i64,
    /// Every node reached the end of its stream in this checkpoint (a final checkpoint).
    pub ended: bool,
    /// ... and every source finished (at_end = "finish"): the run is complete.
    pub finished: bool,
    pub nodes: Vec<NodeState>,
}

impl Checkpoint {
    pub fn state(&self, node: &str) -> Option<&[u8]> {
        self.nodes
            .iter()
            .find(|n| n.node == node)
            .map(|n| n.state.get().as_bytes())
    }
}

/// Encodes a checkpoint; `states` are each node's raw JSON state.
pub fn encode(meta: &Checkpoint) -> Result<Vec<u8>, Error> {
    let payload = serde_json::to_vec(meta)
        .map_err(|e| Error::runtime(format!("cannot encode checkpoint: {e}")))?;
    Ok(frame(&payload))
}

/// The header (magic, version, length, CRC32) and the payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The checkpoint's metadata without node states, for `encode_parts`.
#[derive(Serialize)]
pub struct Meta<'a> {
    pub id: u64,
    pub pipeline: &'a str,
    pub pipeline_hash: &'a str,
    pub state_config: &'a BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "no_names")]
    pub dropped: &'a [String],
    pub created_ms: i64,
    pub ended: bool,
    pub finished: bool,
}

fn no_names(v: &&[String]) -> bool {
    v.is_empty()
}

/// Encodes a checkpoint from each node's raw JSON state without parsing or copying the states
/// more than once: large keyed state goes straight from the operator's bytes into the file.
/// Produces the same payload shape that `decode` reads.
pub fn encode_parts(meta: &Meta, states: &[(&str, &[u8])]) -> Result<Vec<u8>, Error> {
    let head = serde_json::to_vec(meta)
        .map_err(|e| Error::runtime(format!("cannot encode checkpoint: {e}")))?;
    let total: usize = head.len()
        + states
            .iter()
            .map(|(n, s)| n.len() + s.len() + 32)
            .sum::<usize>()
        + 16;
    let mut payload = Vec::with_capacity(total);
    // `{...meta` without its closing brace, then the nodes.
    payload.extend_from_slice(&head[..head.len() - 1]);
    payload.extend_from_slice(b",\"nodes\":[");
    for (i, (name, state)) in states.iter().enumerate() {
        if i > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(b"{\"node\":");
        serde_json::to_writer(&mut payload, name)
            .map_err(|e| Error::runtime(format!("cannot encode checkpoint: {e}")))?;
        payload.extend_from_slice(b",\"state\":");
        if state.is_empty() {
            payload.extend_from_slice(b"null");
        } else {
            payload.extend_from_slice(state);
        }
        payload.push(b'}');
    }
    payload.extend_from_slice(b"]}");
    Ok(frame(&payload))
}

/// Checks and decodes a checkpoint file's bytes; the error says why it is not valid.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < HEADER {
        return Err(format!(
            "truncated: {} bytes, shorter than the header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("not a weir checkpoint (bad magic)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().map_err(|_| "header")?);
    if version != VERSION {
        return Err(format!(
            "format version {version}, this weir reads version {VERSION}"
        ));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().map_err(|_| "header")?) as usize;
    let crc = u32::from_le_bytes(bytes[20..24].try_into().map_err(|_| "header")?);
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(format!(
            "truncated: payload has {} bytes, header says {len}",
            payload.len()
        ));
    }
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(format!(
            "corrupted: CRC32 {actual:08x}, header says {crc:08x}"
        ));
    }
    serde_json::from_slice(payload).map_err(|e| format!("unreadable payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            id: 7,
            pipeline: "p".into(),
            pipeline_hash: "abc".into(),
            state_config: None,
            dropped: Vec::new(),
            created_ms: 1,
            ended: false,
            finished: false,
            nodes: vec![NodeState {
                node: "src".into(),
                state: RawValue::from_string(r#"{"offset":12}"#.into()).unwrap(),
            }],
        }
    }

    #[test]
    fn round_trip() {
        let b = encode(&sample()).unwrap();
        let c = decode(&b).unwrap();
        assert_eq!(c.id, 7);
        assert_eq!(c.state("src"), Some(&br#"{"offset":12}"#[..]));
    }

    #[test]
    fn encode_parts_matches_decode() {
        let meta = Meta {
            id: 3,
            pipeline: "p\"q",
            pipeline_hash: "h",
            state_config: &BTreeMap::new(),
            dropped: &[],
            created_ms: 5,
            ended: true,
            finished: false,
        };
        let b = encode_parts(&meta, &[("a", br#"{"x":[1,2]}"#), ("b\"c", b"")]).unwrap();
        let c = decode(&b).unwrap();
        assert_eq!(c.id, 3);
        assert!(c.ended && !c.finished);
        assert_eq!(c.pipeline, "p\"q");
        assert_eq!(c.state("a"), Some(&br#"{"x":[1,2]}"#[..]));
        assert_eq!(c.state("b\"c"), Some(&b"null"[..]));
    }

    #[test]
    fn every_single_bit_flip_and_truncation_is_caught() {
        let b = encode(&sample()).unwrap();
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x10;
            assert!(decode(&x).is_err(), "flip at {i} not caught");
            assert!(decode(&b[..i]).is_err(), "truncation at {i} not caught");
        }
    }
}
