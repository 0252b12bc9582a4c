//! kafsim's command-line and library tests, one module per subject, built as one test
//! binary: every test binary links the whole workspace, so one binary instead of nineteen
//! makes `cargo test` link once (issue 18). `library` runs `kafsim check` over the scenario
//! library, `trace_pins` pins the trace hashes of three library scenarios. Run one subject
//! with `cargo test --test all SUBJECT::` (e.g. `cargo test --test all trace_pins::`).

mod bench_latency;
mod bench_readiness;
mod ci_examples;
mod cli_assign;
mod cli_bench;
mod cli_coverage;
mod cli_init;
mod cli_list;
mod cli_merge;
mod cli_partition;
mod cli_replay;
mod cli_reports;
mod cli_run;
mod cli_shrink;
mod common;
mod false_verdicts;
mod kreps2014;
mod library;
mod scenario_docs;
mod trace_pins;
