//! Failure injection of the application: a record's processing fails with `failure_rate`; the
//! handler then retries it, skips it, or produces it to a dead-letter topic.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Attempts of one record under `on_failure = retry` before the handler gives up on it (a
/// poison record would otherwise block its partition forever); a record given up is skipped.
pub const MAX_ATTEMPTS: u32 = 20;
/// Attempts of one dead-letter produce before the handler gives up (the record is then lost,
/// which the sink-loss checker reports).
pub const MAX_DLQ_ATTEMPTS: u32 = 100;

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
}
