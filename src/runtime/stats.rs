//! The figures of one attempt of a run, per node, as the stage threads counted them: what
//! `--stats` writes and what the end-of-run notices read. Below both, so neither imports the
//! other.

/// Figures of one attempt, for `--stats`.
pub struct RunStats {
    pub names: Vec<String>,
    pub kinds: Vec<&'static str>,
    pub records_in: Vec<u64>,
    pub records_out: Vec<u64>,
    pub errors: Vec<u64>,
    pub late: Vec<u64>,
    pub max_stall_us: Vec<u64>,
    pub checkpoints: Vec<(u64, f64, u64)>,
}
