//! `kafsim partition`: print the partition each key goes to under one client's partitioner,
//! so a user can check where a real service's keys land (and that two clients agree) without
//! running a scenario. Keys are given as hex so binary keys pass unharmed; every key is a
//! non-null key (`--key-hex ""` is the empty key). Only partitioners that hash keys are
//! accepted: the others do not place a key deterministically.

use kafsim_engine::partitioner::{keyed_partition, PartitionerKind};
use std::io::Write;

/// Most keys one invocation takes (a limit on everything, DESIGN rules).
const KEYS_MAX: usize = 100_000;

#[derive(clap::Args)]
pub struct PartitionArgs {
    /// Partitioner name, as a scenario's `partitioner` key (e.g. java-murmur2, sarama-hash,
    /// librdkafka-consistent-random)
    #[arg(long)]
    partitioner: String,
    /// The topic's partition count (at least 1)
    #[arg(long, allow_negative_numbers = true)]
    partitions: i64,
    /// A key as hex bytes (repeat for several keys; "" is the empty key)
    #[arg(long = "key-hex", required = true)]
    key_hex: Vec<String>,
}

pub fn main(args: PartitionArgs) -> u8 {
    match placements(&args) {
        Ok(partitions) => {
            print_lines(&partitions);
            super::EXIT_OK
        }
        Err(message) => {
            eprintln!("kafsim partition: {message}");
            super::EXIT_BAD_INPUT
        }
    }
}

/// The partition of every key, in order, or the reason the input is bad.
fn placements(args: &PartitionArgs) -> Result<Vec<u32>, String> {
    let kind = PartitionerKind::from_name(&args.partitioner)?;
    if !kind.hashes_keys() {
        return Err(format!(
            "partitioner {kind} does not place keys deterministically (it spreads records \
             randomly, round-robin, by bytes written or by explicit partition); choose a \
             partitioner that hashes keys"
        ));
    }
    let partitions = u32::try_from(args.partitions)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("--partitions must be between 1 and {}", u32::MAX))?;
    if args.key_hex.len() > KEYS_MAX {
        return Err(format!("at most {KEYS_MAX} keys per invocation"));
    }
    let keys = args
        .key_hex
        .iter()
        .map(|hex| decode_hex(hex))
        .collect::<Result<Vec<_>, _>>()?;
    keys.iter()
        .map(|key| {
            keyed_partition(kind, key, partitions).ok_or_else(|| {
                format!(
                    "partitioner {kind} does not place the empty key deterministically (it \
                     treats it like a null key)"
                )
            })
        })
        .collect()
}

/// Lowercase or uppercase hex, two digits per byte; `""` is the empty key.
fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Ok(hex_digit(*high, hex)? << 4 | hex_digit(*low, hex)?),
            _ => Err(format!("--key-hex {hex:?}: odd number of hex digits")),
        })
        .collect()
}

fn hex_digit(digit: u8, hex: &str) -> Result<u8, String> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(format!(
            "--key-hex {hex:?}: not a hex digit: {:?}",
            digit as char
        )),
    }
}

/// One partition per line; a closed pipe (`| head`) ends the output quietly.
fn print_lines(partitions: &[u32]) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for partition in partitions {
        if writeln!(out, "{partition}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_and_rejects() {
        assert_eq!(decode_hex(""), Ok(vec![]));
        assert_eq!(decode_hex("6b61FF00"), Ok(vec![0x6b, 0x61, 0xff, 0x00]));
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("é1").is_err());
    }
}
