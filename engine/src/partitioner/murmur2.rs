//! Java's `Utils.murmur2`: the 32-bit MurmurHash2 variant Kafka's Java producer hashes keys
//! with (seed 0x9747b28c). librdkafka's `rd_murmur2`, kafka-go's `Murmur2Balancer` and
//! kafka-python port the same function, which is why a `murmur2` partitioner in any of them
//! puts a key where a Java producer does.

/// Seed Java's `Utils.murmur2` uses.
const SEED: u32 = 0x9747_b28c;
/// Multiplier and shift of MurmurHash2.
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// Java's `Utils.murmur2(data)`, as an unsigned 32-bit value (Java returns the same bits as an
/// `int`). The tail is mixed in the order Java's `switch` fall-through does.
pub fn murmur2(data: &[u8]) -> u32 {
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        // Java reads each 4-byte group little-endian.
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// Java's keyed partition: `Utils.toPositive(murmur2(key)) % partitions`, where `toPositive`
/// clears the sign bit (not `Math.abs`, which would map `Integer.MIN_VALUE` to itself).
pub fn partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_bytes_change_the_hash() {
        // Each tail length (1..=3) must take part: a dropped tail byte would make these equal.
        assert_ne!(murmur2(b"a"), murmur2(b"b"));
        assert_ne!(murmur2(b"aa"), murmur2(b"ab"));
        assert_ne!(murmur2(b"aaa"), murmur2(b"aab"));
        assert_ne!(murmur2(b"aaaaa"), murmur2(b"aaaab"));
    }

    #[test]
    fn positive_partition_is_in_range() {
        for n in 1..40 {
            assert!(partition(b"kafka", n) < n);
        }
    }
}
