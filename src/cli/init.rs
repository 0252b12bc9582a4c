//! `kafsim init [--client java|sarama|kafka-go|librdkafka] [FILE]` (DESIGN §8): writes an
//! annotated starter scenario for one client library, configured the safe way for that
//! client (acks=all, idempotence where the client has it, commit after processing), so that
//! it runs green; the comments say which knob to turn to see a failure. Every key is
//! explained in docs/scenarios.md.
//!
//! An existing FILE is never overwritten (exit status 2).

use super::common;
use std::io::Write as _;
use std::path::PathBuf;

/// The client libraries a starter exists for (the names `client =` takes).
pub const CLIENTS: [&str; 4] = ["java", "sarama", "kafka-go", "librdkafka"];

#[derive(clap::Args)]
pub struct InitArgs {
    /// The client library of the producers and consumers
    #[arg(long, default_value = "java", value_parser = clap::builder::PossibleValuesParser::new(CLIENTS))]
    client: String,
    /// The file to write (must not exist)
    #[arg(default_value = "scenario.toml")]
    file: PathBuf,
}

pub fn main(args: InitArgs) -> u8 {
    let path = &args.file;
    if let Err(code) = common::check_output(path, "FILE") {
        return code;
    }
    let text = starter(&args.client);
    // create_new: never replace a file, even one that appears between a check and the write.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "kafsim init: {} exists; not overwriting it\n  hint: give another FILE, e.g. `kafsim init --client {} my-{}.toml`",
                path.display(),
                args.client,
                args.client
            );
            return super::EXIT_BAD_INPUT;
        }
        Err(e) => {
            eprintln!("kafsim init: cannot write {}: {e}", path.display());
            return super::EXIT_BAD_INPUT;
        }
    };
    if let Err(e) = file.write_all(text.as_bytes()) {
        let _ = std::fs::remove_file(path);
        eprintln!("kafsim init: cannot write {}: {e}", path.display());
        return super::EXIT_BAD_INPUT;
    }
    println!(
        "wrote {} (a {} producer and consumer group under broker faults)",
        path.display(),
        args.client
    );
    println!("run it:  kafsim run {}", path.display());
    println!("keys:    docs/scenarios.md");
    super::EXIT_OK
}

/// The client-specific part of the producer: its safe settings, with why.
fn producer_config(client: &str) -> &'static str {
    match client {
        "sarama" => {
            r#"acks = "all"                  # sarama's default is 1 (WaitForLocal): a leader crash can
                              # lose acknowledged records. Try "1" to see a lost-write.
"enable.idempotence" = true   # Producer.Idempotent; needs acks=all and one open request
"max.in.flight.requests.per.connection" = 1   # Net.MaxOpenRequests = 1 (sarama requires it
                              # for idempotence)
"#
        }
        "kafka-go" => {
            r#"acks = "all"                  # kafka-go's Writer default is RequireNone (acks=0): it does
                              # not wait for the broker at all. Try "0" to see records vanish.
                              # kafka-go has no idempotent producer; a retried batch may be
                              # written twice (`duplicate`, allowed below).
"#
        }
        "librdkafka" => {
            r#"acks = "all"                  # the default since librdkafka 1.0
"enable.idempotence" = true   # off by default in librdkafka; retries then keep order and
                              # write no duplicates
"max.in.flight.requests.per.connection" = 5   # librdkafka lowers its default (1000000) to 5
                              # by itself when idempotence is on; kafsim wants it written
"#
        }
        _ => {
            r#"acks = "all"                  # the default since Kafka 3.0 (KIP-679); "1" can lose
                              # acknowledged records when a leader crashes
"enable.idempotence" = true   # the default since 3.0: retries write no duplicates
"#
        }
    }
}

/// The starter scenario for `client`.
pub fn starter(client: &str) -> String {
    format!(
        r#"# A kafsim scenario: a {client} producer and consumer group on a three-broker cluster under
# random broker crashes, pauses and network partitions. Written by `kafsim init --client
# {client}`; every key is explained in docs/scenarios.md.
#
#   kafsim run THIS-FILE                 # every seed; failing seeds come with a replay command
#   kafsim replay THIS-FILE --seed 3     # one seed's story, the same every time
#
# As written it runs green: nothing that counts as a failure happens. The comments say which
# setting to change to watch a real failure appear.

name = "starter-{client}"
description = "A {client} producer and consumer group under broker crashes, pauses and partitions; configured not to lose records."
duration = "20s"              # the safety phase: load and faults
seeds = 20                    # seeds `kafsim run` tries by default
# drain = "auto" (the default): after the heal, run until every send has an outcome and the
# group has read everything

[cluster]
brokers = 3
[cluster.config]              # broker properties, Kafka's names, quoted
"min.insync.replicas" = 2     # with acks=all, a write needs two copies before it is acknowledged
"unclean.leader.election.enable" = false

[[topics]]
name = "orders"
partitions = 3
replication_factor = 3

[[producers]]
client = "{client}"
topic = "orders"
rate = 200                    # records per second
keys = 20                     # distinct keys (per-key order is checked)
[producers.config]            # producer properties by their Java names, for every client
{producer}
[[consumer_groups]]
group = "billing"
members = 2
client = "{client}"
topics = ["orders"]
[consumer_groups.config]
"enable.auto.commit" = false  # commit explicitly, after processing (see the handler)
"auto.offset.reset" = "earliest"
{consumer}[consumer_groups.handler]     # what the service does with each record
process_time = "1ms..5ms"
mark = "after-process"        # "before-process" commits records not yet processed: a crash
                              # then loses them (`sink-loss`)
commit = "sync"               # a synchronous commit after each processed poll batch
sink = "plain"                # every processed record is written to the service's database

[faults]
random = true                 # each seed draws its own mix of these kinds
kinds = ["crash", "pause", "partition"]   # add "power-loss", "consumer-crash", ...
mean_interval = "4s"

[expect]
violations = []               # nothing that counts as a failure may happen
# At-least-once: after a crash or rebalance a record can be read and written again.
allow = ["duplicate", "sink-duplicate"]
"#,
        producer = producer_config(client),
        consumer = consumer_config(client),
    )
}

/// Consumer properties a client needs for the starter's after-processing marks: librdkafka
/// stores each offset when `consumer_poll` hands the message over unless the application
/// turns that off and stores offsets itself (`rdkafka_offset.c`, `enable.auto.offset.store`).
fn consumer_config(client: &str) -> &'static str {
    match client {
        "librdkafka" => {
            "\"enable.auto.offset.store\" = false   # store offsets after processing, not at hand-over\n"
        }
        _ => "",
    }
}
