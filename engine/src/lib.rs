//! # kafsim-engine
//!
//! Kafka's semantics as sans-IO state machines: the partition log, replication and the
//! controller on the broker side; the producer and consumer clients with their
//! application model on the client side.
//!
//! Architecture invariant: this crate performs no I/O, reads no clock, spawns no thread and
//! draws no global randomness. Everything reaches a node through [`node::Cx`]; everything a
//! node wants done leaves through it. It depends on nothing else in the repository.

pub mod admin;
pub mod alias;
pub mod app;
pub mod assignor;
pub mod broker;
pub mod client;
pub mod compression;
pub mod config;
pub mod connection_setup;
pub mod consumer;
pub mod controller;
pub mod coordinator;
pub mod history;
pub mod isr;
pub mod log;
pub mod node;
pub mod partition_map;
pub mod partitioner;
pub mod producer;
pub mod protocol;
pub mod reconnect;
pub mod record;
pub mod replica;
#[cfg(test)]
pub(crate) mod testkit;
pub mod time;

pub use node::{
    Cx, Disk, DiskData, DiskDone, DiskEntry, Effect, FileId, Node, NodeId, Timer, TimerId,
};
pub use record::{InternalPayload, Key, Record, RecordBatch, TopicId, TopicPartition, ValueId};
pub use time::{Duration, Instant};
