//! Writes an example report from synthetic measurements, to look at the page and charts
//! without a simulator: `cargo run -p kafsim-reports --example example_report -- /tmp/out`.
//!
//! The numbers are made up (a leader crash at 20 s stalls acknowledgements for 3 s and
//! builds a backlog); they only exercise every part of the report.

use std::path::PathBuf;
use std::time::Duration;

use kafsim_reports::{render_text, write_report, BenchResult, Recorder, Sweep};

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;

/// A small deterministic generator (xorshift64*), so the example needs no dependency.
struct Noise(u64);

impl Noise {
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential draw with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next_unit()).ln()
    }
}

fn synthetic_run(workload: &str, rate_per_s: u64, base_latency_ms: f64, seed: u64) -> BenchResult {
    let mut noise = Noise(seed);
    let mut recorder = Recorder::new(Duration::from_secs(5));
    let duration_s = 60;
    let (stall_from, stall_to) = (20 * SECOND, 23 * SECOND);
    let mut consumer_free_at = 0u64;
    let gap = SECOND / rate_per_s;
    for i in 0..duration_s * rate_per_s {
        let sent = i * gap;
        let mut latency =
            ((base_latency_ms + noise.exponential(base_latency_ms / 4.0)) * MS as f64) as u64;
        if sent < 2 * SECOND {
            latency *= 3; // cold start during the warm-up
        }
        let mut acked = sent + latency;
        if (stall_from..stall_to).contains(&acked) {
            acked = stall_to + (noise.exponential(40.0) * MS as f64) as u64;
        }
        recorder.on_publish(sent, acked, 1024);
        // One consumer that polls a little slower than the producer can send after the stall.
        let polled = (acked + 2 * MS).max(consumer_free_at + gap * 9 / 10);
        consumer_free_at = polled;
        recorder.on_consume(sent, polled, 1024);
        if i % (rate_per_s / 10) == 0 {
            let backlog = polled.saturating_sub(sent) / gap;
            recorder.on_backlog(sent, backlog);
        }
    }
    recorder.on_fault(20 * SECOND, "crash broker-1 (leader of orders/0)");
    recorder.on_fault(23 * SECOND, "leader elected: broker-2");
    recorder.on_fault(35 * SECOND, "restart broker-1");
    recorder.on_fault(55 * SECOND, "partition broker-0 | broker-1,broker-2");
    recorder.finish(workload, "default", Duration::from_secs(duration_s))
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "example-report".into()),
    );
    let run = synthetic_run("orders-acks-all", 20_000, 3.0, 7);
    print!("{}", render_text(&run));
    let mut sweep = Sweep::default();
    for (index, linger_ms) in [0u64, 1, 5, 10, 25].into_iter().enumerate() {
        let base = 2.0 + linger_ms as f64;
        let rate = 5_000 + 1_500 * index as u64;
        let result = synthetic_run("orders-linger", rate, base, 100 + index as u64);
        sweep.push(vec![("linger.ms".into(), linger_ms.to_string())], result);
    }
    match write_report(&dir, &[run], Some(&sweep)) {
        Ok(()) => println!("report written to {}", dir.display()),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    }
}
