//! Per-record processing time and the batch handler's buffer.

use super::{Delivered, HandlerSpec};
use crate::time::{duration_nanos, Duration};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Draw one record's processing time from the spec's range.
pub fn process_time(spec: &HandlerSpec, rng: &mut ChaCha8Rng) -> Duration {
    let (min, max) = spec.process_time;
    if min >= max {
        return min;
    }
    Duration::from_nanos(rng.gen_range(duration_nanos(min)..=duration_nanos(max)))
}

/// Records a batch handler has accepted but not yet processed.
#[derive(Debug, Default)]
pub struct BatchBuffer {
    pub records: Vec<Delivered>,
    /// Sequence of the current batch (keys its timeout timer, so a stale one is ignored).
    pub seq: u64,
    /// The timeout fired while the poll loop was busy: flush at the next poll.
    pub due: bool,
}

impl BatchBuffer {
    /// Whether the batch is full for a handler of batch size `size`.
    pub fn is_full(&self, size: u32) -> bool {
        self.records.len() >= size as usize
    }

    /// Take the batch out for processing, starting a new one.
    pub fn take(&mut self) -> Vec<Delivered> {
        self.seq += 1;
        self.due = false;
        std::mem::take(&mut self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn process_times_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut spec = HandlerSpec {
            process_time: (Duration::from_millis(5), Duration::from_millis(5)),
            ..HandlerSpec::default()
        };
        assert_eq!(process_time(&spec, &mut rng), Duration::from_millis(5));
        spec.process_time = (Duration::from_millis(1), Duration::from_millis(20));
        for _ in 0..100 {
            let t = process_time(&spec, &mut rng);
            assert!(t >= Duration::from_millis(1) && t <= Duration::from_millis(20));
        }
    }
}
