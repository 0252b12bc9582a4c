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

    #[test]
    fn evaluates_on_the_key() {
        let e = PartitionExpr::KeyModulo(4);
        assert_eq!(e.evaluate(Some(Key(10))), Some(2));
        assert_eq!(e.evaluate(None), None);
        assert_eq!(PartitionExpr::Constant(1).evaluate(None), Some(1));
    }
}
