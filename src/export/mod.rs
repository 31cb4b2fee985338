//! `weir export`: the pipeline for another engine. Only Apache Flink (SQL) so far, for a user
//! whose data outgrows one machine and who should not have to rewrite the pipeline.

pub mod flink;
mod jq_sql;
mod sample;
