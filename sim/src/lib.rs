//! # kafsim-sim
//!
//! The deterministic simulator: scheduler, network, disk, node lifecycle, nemesis, history,
//! checkers, campaign runner, traces and the bench measurement. It knows the engine only through the
//! [`kafsim_engine::Node`] interface and the read-only inspection used by invariants.

pub mod campaign;
pub mod checker;
pub mod cluster;
pub mod connection;
pub mod cost;
pub mod coverage;
pub mod database;
pub mod disk;
pub mod drain;
pub mod history;
pub mod invariants;
pub mod late;
pub mod life;
pub mod measure;
pub mod names;
pub mod nemesis;
pub mod network;
pub mod output;
pub mod pace;
pub mod perfetto;
pub mod readiness;
pub mod runner;
pub mod scenario;
pub mod script;
pub mod seed;
pub mod socket;
pub mod trace;
pub mod violation;
pub mod world;
