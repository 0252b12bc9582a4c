//! A no-panic sweep over mixed configurations (legacy and leader-epoch protocols, unclean
//! election, flush policies, two controllers) and every fault kind, power loss included.
//! Slow in debug: `cargo test -p kafsim-sim --test replication_sweep -- --ignored`.

use crate::support::*;
use kafsim_engine::broker::config::{BrokerConfig, ReplicationProtocol};
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition};
use rand::{Rng, SeedableRng};
#[test]
#[ignore = "300 seeds, ~30 s in debug"]
fn no_panic_under_mixed_configurations_and_faults() {
    for seed in 0..300u64 {
        let config = BrokerConfig {
            replication_protocol: if seed % 2 == 0 {
                ReplicationProtocol::HighWatermark
            } else {
                ReplicationProtocol::LeaderEpoch
            },
            unclean_leader_election: seed % 3 == 0,
            flush_interval_messages: (seed % 5 == 0).then_some(1),
            ..BrokerConfig::default()
        };
        let (mut w, c) = Harness::new(seed)
            .controllers(2)
            .partitions(3)
            .replication_factor(2)
            .offsets_partitions(3)
            .broker_config(config)
            .build();
        for p in 0..3 {
            add_probe(
                &mut w,
                &c,
                p,
                TopicPartition::new(TopicId(0), p),
                if p == 0 { Acks::Leader } else { Acks::All },
                Instant::from_millis(40_000),
            );
        }
        let mut nodes = c.brokers.clone();
        nodes.extend(c.controllers.iter().copied());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        while w.now() < Instant::from_millis(40_000) {
            w.run_for(Duration::from_millis(rng.gen_range(200..3000)));
            let b = nodes[rng.gen_range(0..nodes.len())];
            let others: Vec<NodeId> = nodes.iter().copied().filter(|x| *x != b).collect();
            let hold = Duration::from_millis(rng.gen_range(100..12_000));
            let fault = match rng.gen_range(0..4) {
                0 => HeldFault::Crash,
                1 => HeldFault::Pause,
                2 => HeldFault::PowerLoss,
                _ => HeldFault::Partition,
            };
            hold_fault(&mut w, fault, b, &others, hold);
        }
        w.net().heal();
        for n in &nodes {
            w.resume(*n);
            w.restart(*n);
        }
        w.run_for(Duration::from_secs(30));
    }
}
