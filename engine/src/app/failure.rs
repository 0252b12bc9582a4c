//! Failure injection of the application: a record's processing fails with `failure_rate`; the
//! handler then retries it, skips it, or produces it to a dead-letter topic.

use crate::record::ValueId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Default attempts of one record under `on_failure = retry` before the handler gives up on
/// it (handler key `max_attempts`); a record given up is skipped. A poison record retried
/// without a limit blocks its partition forever.
pub const MAX_ATTEMPTS: u32 = 20;
/// Attempts of one dead-letter produce before the handler gives up (the record is then lost,
/// which the sink-loss checker reports).
pub const MAX_DLQ_ATTEMPTS: u32 = 100;

/// Whether the record with value id `value` is poison under `rate`: its processing fails on
/// every attempt, on every member (a malformed payload, a constraint it always violates). A
/// hash of the value id decides, so no random draw is taken and every member agrees.
pub fn is_poison(value: ValueId, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    // splitmix64 finaliser: value ids are sequential, their hashes uniform.
    let mut z = value.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// Whether this attempt fails.
pub fn draw_failure(rng: &mut ChaCha8Rng, rate: f64) -> bool {
    rate > 0.0 && rng.gen_bool(rate.min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn failure_draws_follow_the_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(!(0..1000).any(|_| draw_failure(&mut rng, 0.0)));
        assert!((0..1000).all(|_| draw_failure(&mut rng, 1.0)));
        let hits = (0..10_000).filter(|_| draw_failure(&mut rng, 0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn poison_records_follow_the_rate_and_stay_poison() {
        assert!(!(0..1000).any(|v| is_poison(ValueId(v), 0.0)));
        assert!((0..1000).all(|v| is_poison(ValueId(v), 1.0)));
        let poison: Vec<u64> = (0..100_000)
            .filter(|v| is_poison(ValueId(*v), 0.01))
            .collect();
        assert!((800..1200).contains(&poison.len()), "{}", poison.len());
        assert!(poison.iter().all(|v| is_poison(ValueId(*v), 0.01)));
    }
}
