//! kafsim-sim's integration tests, one module per subject, built as one test binary: every
//! test binary links the whole engine and simulator, so one binary instead of thirty makes
//! `cargo test` link once (CI time and `target/` size; issue 18). Run one subject with
//! `cargo test -p kafsim-sim --test all SUBJECT::` (e.g. `replication_isr::`).

mod consumer_support;
mod harness;
mod support;
mod txn_support;

mod connection;
mod connection_setup;
mod consume_transform_produce;
mod consumer_commit;
mod consumer_coordinator;
mod consumer_database;
mod consumer_faults;
mod consumer_group;
mod consumer_pace;
mod consumer_smoke;
mod cost;
mod drain;
mod kernel;
mod librdkafka_transactions;
mod panic_explained;
mod producer_client;
mod producer_cluster;
mod producer_phase;
mod producer_throughput;
mod producer_transactions;
mod replication_basic;
mod replication_controller;
mod replication_faults;
mod replication_idempotent_retry;
mod replication_invariants;
mod replication_isr;
mod replication_kip101;
mod replication_perf;
mod replication_power;
mod replication_restart;
mod replication_sweep;
mod replication_zombie;
mod sarama_transactions;
mod scenario_parse;
mod scenario_properties;
mod socket;
mod static_membership;
mod transaction_coordinator;
mod transactions_kip890;
