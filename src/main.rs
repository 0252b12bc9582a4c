//! The `kafsim` command line (DESIGN §6). Only argument parsing and dispatch live here; each
//! command is a module of `cli/`, and all real work is in the workspace crates.

mod allocator;
mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kafsim",
    version,
    about = "Deterministic simulation and benchmark harness for Kafka-style streaming systems"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a fault-injection campaign of one scenario over many seeds
    Run(cli::run::RunArgs),
    /// Re-run one seed of a scenario, byte for byte, with the life of every violating record
    Replay(cli::replay::ReplayArgs),
    /// Make a failing seed into a small scripted scenario that reproduces it
    Shrink(cli::shrink::ShrinkArgs),
    /// Run the scenario library against its expectations
    Check(cli::check::CheckArgs),
    /// Throughput / latency benchmark of a workload on a modelled cluster
    Bench(cli::bench::BenchArgs),
    /// Combine the JSON files of a campaign's shards into the whole campaign's JSON / JUnit
    Merge(cli::merge::MergeArgs),
    /// Write an annotated starter scenario for one client library
    Init(cli::init::InitArgs),
    /// List the scenario library with descriptions
    List(cli::list::ListArgs),
    /// Print the partition each key goes to under a client's partitioner
    Partition(cli::partition::PartitionArgs),
    /// Compute a consumer-group assignment as a client's assignor would
    Assign(cli::assign::AssignArgs),
}

fn main() -> ExitCode {
    restore_sigpipe();
    let args = Args::parse();
    let code = match args.command {
        Command::Run(a) => cli::run::main(a),
        Command::Replay(a) => cli::replay::main(a),
        Command::Shrink(a) => cli::shrink::main(a),
        Command::Check(a) => cli::check::main(a),
        Command::Bench(a) => cli::bench::main(a),
        Command::Merge(a) => cli::merge::main(a),
        Command::Init(a) => cli::init::main(a),
        Command::List(a) => cli::list::main(a),
        Command::Partition(a) => cli::partition::main(a),
        Command::Assign(a) => cli::assign::main(a),
    };
    ExitCode::from(code)
}

/// `kafsim run ... | head` must end quietly when `head` has read enough, as `cat` or `grep`
/// do. Rust ignores SIGPIPE at start-up, so a write to the closed pipe is an error and
/// `println!` panics with "failed printing to stdout: Broken pipe"; with the signal's default
/// action restored, the process ends by SIGPIPE instead. No output file is left half written
/// (they are written atomically), and a killed process never reaches them.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
