//! Sticky partitioning of records whose key is not hashed: instead of spreading such records
//! one by one (which makes a batch per record), a producer sticks to one partition for a while
//! so batches fill up. Java and librdkafka decide "a while" differently, hence two types.

use crate::time::{Duration, Instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A uniformly random partition in `0..partitions`.
pub(crate) fn random_partition(partitions: u32, rng: &mut ChaCha8Rng) -> u32 {
    rng.gen_range(0..partitions)
}

/// Java's uniform sticky partitioner (Kafka 3.3+, KIP-794, `BuiltInPartitioner`): stick to
/// a partition until `batch.size` bytes were produced to it, then pick the next one at
/// random. The next pick may be the same partition, as in Java.
///
/// Left out: adaptive partitioning (`partitioner.adaptive.partitioning.enable`, which weights
/// the pick by inverse queue size) and the accumulator's `enableSwitch` gate (Java defers the
/// switch while the partition's last batch is not full, up to `2 * batch.size`); kafsim
/// switches at exactly `batch.size` bytes, among all partitions (availability is not
/// modelled here).
#[derive(Clone, Debug)]
pub(crate) struct JavaSticky {
    partition: u32,
    produced_bytes: u64,
}

impl JavaSticky {
    /// The partition for the next record of `record_bytes`, and the switch when this record
    /// brought the partition to `batch_size` bytes (Java's `updatePartitionInfo`).
    pub fn next(
        state: &mut Option<JavaSticky>,
        partitions: u32,
        record_bytes: u32,
        batch_size: u32,
        rng: &mut ChaCha8Rng,
    ) -> u32 {
        let sticky = match state {
            // A partition count that shrank (cannot happen in Kafka) forces a new pick.
            Some(sticky) if sticky.partition < partitions => sticky,
            _ => state.insert(JavaSticky::start(partitions, rng)),
        };
        let partition = sticky.partition;
        sticky.produced_bytes += u64::from(record_bytes);
        // KafkaProducer passes max(1, batch.size) as the sticky batch size.
        if sticky.produced_bytes >= u64::from(batch_size.max(1)) {
            *sticky = JavaSticky::start(partitions, rng);
        }
        partition
    }

    fn start(partitions: u32, rng: &mut ChaCha8Rng) -> JavaSticky {
        JavaSticky {
            partition: random_partition(partitions, rng),
            produced_bytes: 0,
        }
    }
}

/// librdkafka's sticky partition (`rd_kafka_msg_sticky_partition`, librdkafka >= 1.5):
/// records whose key is not hashed go to `rkt_sticky_partition`, re-drawn at random once more
/// than `sticky.partitioning.linger.ms` has passed since the last draw (`rd_interval`: the
/// interval has elapsed when `now - (last + linger) > 0`). With linger 0 librdkafka calls the
/// random partitioner for every record instead; [`LibrdkafkaSticky::next`] does the same.
#[derive(Clone, Debug)]
pub(crate) struct LibrdkafkaSticky {
    partition: u32,
    drawn_at: Instant,
}

impl LibrdkafkaSticky {
    /// The partition for a record produced at `now`.
    pub fn next(
        state: &mut Option<LibrdkafkaSticky>,
        partitions: u32,
        linger: Duration,
        now: Instant,
        rng: &mut ChaCha8Rng,
    ) -> u32 {
        if linger.is_zero() {
            return random_partition(partitions, rng);
        }
        match state {
            Some(sticky) if sticky.partition < partitions && now <= sticky.drawn_at + linger => {
                sticky.partition
            }
            _ => {
                let partition = random_partition(partitions, rng);
                *state = Some(LibrdkafkaSticky {
                    partition,
                    drawn_at: now,
                });
                partition
            }
        }
    }
}
