use kafsim_sim::runner::{prepare, run_seed, RunOptions};
fn main() {
    let path = std::env::args().nth(1).expect("scenario");
    let seeds: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let s = kafsim_sim::scenario::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    let p = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    for seed in 1..=seeds {
        let out = run_seed(&p, seed, &RunOptions::default());
        println!("seed {seed}: drained={} stats={:?} hash={:016x}", out.drained, out.result.stats, out.result.trace_hash);
        for v in out.result.violations.iter().take(8) {
            println!("  {} {:?} {:?} {}", v.kind, v.partition, v.offset, v.detail);
        }
        for l in out.fault_log.iter().take(10) { println!("  fault {l}"); }
    }
}
