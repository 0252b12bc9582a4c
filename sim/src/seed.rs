//! Seeding: one run seed, many independent random streams.
//!
//! Each component (the network's jitter, the nemesis, every node) draws from its own
//! `ChaCha8Rng` stream keyed by the run seed and a stream id, so adding one draw in one
//! component never shifts the draws of another (TigerBeetle / iggy style named salts).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Stream ids of the simulator's own components. Nodes use `NODE_BASE + node index`.
pub mod stream {
    pub const NETWORK: u64 = 1;
    pub const DISK: u64 = 2;
    pub const NEMESIS: u64 = 3;
    pub const WORKLOAD: u64 = 4;
    /// Each producer's start phase ([`kafsim_engine::producer::ProducerSpec::start_phase`]).
    pub const PRODUCER_PHASE: u64 = 5;
    pub const NODE_BASE: u64 = 1 << 32;
}

/// The random stream `stream` of run `seed`.
pub fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&0x6b61_6673_696d_u64.to_le_bytes()); // "kafsim"
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a1 = rng_for(7, 1).next_u64();
        let a2 = rng_for(7, 1).next_u64();
        let b = rng_for(7, 2).next_u64();
        let c = rng_for(8, 1).next_u64();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, c);
    }
}
