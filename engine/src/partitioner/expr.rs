//! The application's own partition choice for `partitioner = "manual"`: the pattern of a
//! service that computes `msg.Partition = int32(customerID % 6)` before sending (sarama
//! `NewManualPartitioner`, Java `new ProducerRecord(topic, partition, key, value)`, librdkafka
//! `rd_kafka_producev(..., RD_KAFKA_V_PARTITION(p))`).
//!
//! Two forms, small on purpose, parsed when the scenario is read:
//! - `"key % N"`: the key's integer value (kafsim keys are the integers `0..keys`) modulo N;
//! - `"N"`: every record to partition N.
//!
//! The expression may name a partition the topic does not have (yet): the client then fails
//! the send, as the real ones do (see [`PartitionExpr::evaluate`]).

use crate::record::Key;

/// Largest modulus or constant accepted (far above any modelled partition count).
pub const MAX_PARTITION_EXPR: u32 = 1 << 20;

/// A parsed `partition` expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionExpr {
    /// `key % N`.
    KeyModulo(u32),
    /// A fixed partition.
    Constant(u32),
}

impl PartitionExpr {
    /// Parse `"key % N"` or `"N"`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<PartitionExpr, String> {
        let expected = || {
            format!(
                "expected \"key % N\" (the key's integer value modulo N, N from 1 to \
                 {MAX_PARTITION_EXPR}) or a partition number, got \"{text}\""
            )
        };
        let number = |s: &str| -> Result<u32, String> {
            let n: u32 = s.trim().parse().map_err(|_| expected())?;
            (n <= MAX_PARTITION_EXPR).then_some(n).ok_or_else(expected)
        };
        let trimmed = text.trim();
        match trimmed.split_once('%') {
            Some((lhs, rhs)) if lhs.trim() == "key" => match number(rhs)? {
                0 => Err(format!("{}: a modulus of 0 divides by zero", expected())),
                n => Ok(PartitionExpr::KeyModulo(n)),
            },
            Some(_) => Err(expected()),
            None => Ok(PartitionExpr::Constant(number(trimmed)?)),
        }
    }

    /// Whether the expression reads the key (a producer with null keys cannot use it).
    pub fn uses_key(self) -> bool {
        matches!(self, PartitionExpr::KeyModulo(_))
    }

    /// The partition this record names; `None` for a key expression on a null key.
    pub fn evaluate(self, key: Option<Key>) -> Option<u32> {
        match self {
            PartitionExpr::KeyModulo(n) => key.map(|k| k.0 % n),
            PartitionExpr::Constant(p) => Some(p),
        }
    }

    /// The partition to hand the partitioner for a topic that has `partitions` partitions
    /// now, or `None` when the send must fail instead (a partition the topic does not have,
    /// or a key expression on a null key): what the producer checks before it asks the
    /// partitioner, so `partitioner = "manual"` never meets a partition out of range.
    pub fn choose(self, key: Option<Key>, partitions: u32) -> Option<u32> {
        self.evaluate(key).filter(|p| *p < partitions)
    }
}

impl std::fmt::Display for PartitionExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionExpr::KeyModulo(n) => write!(f, "key % {n}"),
            PartitionExpr::Constant(p) => write!(f, "{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            PartitionExpr::parse("key % 6"),
            Ok(PartitionExpr::KeyModulo(6))
        );
        assert_eq!(
            PartitionExpr::parse(" key%3 "),
            Ok(PartitionExpr::KeyModulo(3))
        );
        assert_eq!(PartitionExpr::parse("2"), Ok(PartitionExpr::Constant(2)));
        for bad in [
            "key % 0",
            "key % -1",
            "value % 3",
            "key + 1",
            "",
            "key %",
            "x",
        ] {
            let err = PartitionExpr::parse(bad).unwrap_err();
            assert!(err.contains("key % N"), "{bad}: {err}");
        }
    }

    proptest::proptest! {
        /// `partitioner = "manual"` never panics: whatever the expression, key and current
        /// partition count (which `add-partitions` changes under a running producer), the
        /// partition `choose` accepts is one the manual partitioner takes, and it is the one
        /// the expression named.
        #[test]
        fn the_manual_partitioner_never_panics(
            modulo in 1u32..=MAX_PARTITION_EXPR,
            constant in 0u32..=MAX_PARTITION_EXPR,
            by_key: bool,
            key in proptest::option::of(0u32..1_000_000),
            partitions in 1u32..=20_000,
        ) {
            use crate::partitioner::{PartitionRequest, Partitioner, PartitionerConfig};
            use crate::partitioner::PartitionerKind;
            use rand::SeedableRng;
            let expr = if by_key {
                PartitionExpr::parse(&format!("key % {modulo}")).unwrap()
            } else {
                PartitionExpr::parse(&constant.to_string()).unwrap()
            };
            let key = key.map(Key);
            let chosen = expr.choose(key, partitions);
            if let Some(p) = chosen {
                let mut partitioner =
                    Partitioner::new(PartitionerKind::Manual, PartitionerConfig::default());
                let bytes = key.map(Key::bytes);
                let request = PartitionRequest {
                    key: bytes.as_deref(),
                    explicit: Some(p),
                    record_bytes: 100,
                    partitions,
                    now: crate::time::Instant::ZERO,
                };
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
                proptest::prop_assert_eq!(
                    partitioner.partition(crate::record::TopicId(0), &request, &mut rng),
                    p
                );
            } else {
                let named = expr.evaluate(key);
                proptest::prop_assert!(named.is_none_or(|n| n >= partitions));
            }
        }
    }

    #[test]
    fn evaluates_on_the_key() {
        let e = PartitionExpr::KeyModulo(4);
        assert_eq!(e.evaluate(Some(Key(10))), Some(2));
        assert_eq!(e.evaluate(None), None);
        assert_eq!(PartitionExpr::Constant(1).evaluate(None), Some(1));
    }
}
