//! Retry backoff per client and version (`Producer::retry_backoff`).

use super::super::{Producer, ProducerConfig, ProducerSpec};
use crate::record::TopicId;
use crate::time::{ms, Duration, Instant};
use rand::SeedableRng;

fn producer(client: &str, version: &str) -> Producer {
    let mut config = ProducerConfig::for_client(client, Some(version)).unwrap();
    config.validate().unwrap();
    let spec = ProducerSpec::for_test(
        TopicId(0),
        vec![crate::node::NodeId(0)],
        Instant::from_millis(1_000),
    );
    Producer::new(spec, config)
}

/// The backoffs after the 1st..=6th failed attempt, drawn from one seeded stream.
fn backoffs(client: &str, version: &str) -> Vec<Duration> {
    let p = producer(client, version);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    (1..=6).map(|a| p.retry_backoff(a, &mut rng)).collect()
}

fn within(d: Duration, low: u64, high: u64) -> bool {
    d >= ms(low) && d <= ms(high)
}

#[test]
fn java_backs_off_exponentially_with_jitter_since_3_7() {
    // Before KIP-580: retry.backoff.ms every time.
    assert_eq!(backoffs("java", "3.6"), vec![ms(100); 6]);
    // 3.7+: 100 · 2^(attempts-1) · [0.8, 1.2), at most retry.backoff.max.ms (1 s).
    let b = backoffs("java", "3.7");
    for (i, (low, high)) in [(80, 120), (160, 240), (320, 480), (640, 960)]
        .into_iter()
        .enumerate()
    {
        assert!(within(b[i], low, high), "attempt {}: {:?}", i + 1, b[i]);
    }
    // From the 5th on the exponent is capped at log2(1000 / 100): 1 s · [0.8, 1.2), cut at 1 s.
    assert!(
        within(b[4], 800, 1_000) && within(b[5], 800, 1_000),
        "{b:?}"
    );
    // The jitter is drawn: two draws of the first backoff differ.
    let p = producer("java", "3.7");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let draws: Vec<Duration> = (0..8).map(|_| p.retry_backoff(1, &mut rng)).collect();
    assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
}

#[test]
fn librdkafka_backs_off_exponentially_since_2_3() {
    assert_eq!(backoffs("librdkafka", "2.2.0"), vec![ms(100); 6]);
    let b = backoffs("librdkafka", "2.3.0");
    assert!(within(b[0], 80, 120) && within(b[1], 160, 240), "{b:?}");
    assert!(within(b[5], 800, 1_000), "{b:?}");
}

#[test]
fn kafka_go_backs_off_by_the_square_of_the_attempt() {
    // writer.go `backoff(attempt, WriteBackoffMin, WriteBackoffMax)`: attempt² · 100 ms.
    let expected: Vec<Duration> = [100, 400, 900, 1_000, 1_000, 1_000]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(backoffs("kafka-go", "0.4.47"), expected);
}

#[test]
fn sarama_backs_off_constantly() {
    assert_eq!(backoffs("sarama", "1.43"), vec![ms(100); 6]);
}
