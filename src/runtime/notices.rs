//! What a run says on stderr when it ends, beyond errors: things the user would otherwise not
//! notice, such as records a window dropped as late with nothing reading its `.late` output.

use super::stats::RunStats;
use crate::pipeline::graph::{Graph, Port};

/// One line per window that counted late records and has no `<node>.late` wired: how many,
/// and what to do about it. Counts are summed over the run's attempts.
pub fn late_warnings(g: &Graph, runs: &[RunStats]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let late: u64 = runs.iter().filter_map(|r| r.late.get(i)).sum();
        if late == 0 {
            continue;
        }
        let wired = n.outputs.iter().any(|&e| g.edges[e].port == Port::Late);
        if wired {
            continue;
        }
        out.push(format!(
            "window '{0}' dropped {late} late record{1} (behind its watermark by more than \
             out_of_orderness + allowed_lateness); wire `{0}.late` to a sink to keep them, or \
             raise `out_of_orderness`",
            n.name,
            if late == 1 { "" } else { "s" }
        ));
    }
    out
}
