//! Record batch compression: `compression.type`, `compression.level` and what a codec does
//! to the bytes of a batch.
//!
//! A producer compresses each record batch as a whole (Kafka's v2 format compresses the
//! records of a batch behind an uncompressed 61-byte header, `DefaultRecordBatch`); the
//! broker stores and replicates the compressed batch as it came, and the consumer
//! decompresses it. So compression shrinks the bytes on every link and on every disk, and
//! costs CPU where batches are compressed or decompressed (the simulator's cost model,
//! `sim/src/cost.rs`, charges it; the engine only carries the codec and the ratio).
//!
//! How much a codec shrinks data depends on the data: a workload's `message_profile`
//! ([`MessageProfile`]) picks a measured ratio per codec, or sets one ratio for all codecs.
//! The payload bytes themselves are not modelled, so a batch carries its compressed fraction.

use std::fmt;

/// A codec (`compression.type`; Kafka's `CompressionType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CompressionType {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    pub const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];

    /// The Java / librdkafka name.
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::None => "none",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    /// The codec called `name` (case-insensitive, as Java's `CompressionType.forName` and
    /// librdkafka's enum properties accept).
    pub fn from_name(name: &str) -> Option<CompressionType> {
        CompressionType::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The levels the Java 3.8+ producer accepts for this codec (KIP-390,
    /// `compression.gzip.level` 1..9 or -1 for zlib's default, `compression.lz4.level` 1..17,
    /// `compression.zstd.level` zstd's minimum to 22); `None` when the codec has no level.
    pub fn java_level_range(self) -> Option<(i32, i32)> {
        match self {
            CompressionType::Gzip => Some((-1, 9)),
            CompressionType::Lz4 => Some((1, 17)),
            // ZSTD_minCLevel() is -(1 << 17).
            CompressionType::Zstd => Some((-131_072, 22)),
            CompressionType::None | CompressionType::Snappy => None,
        }
    }

    /// The codec's default level (the level its compressed ratio and speed are quoted at):
    /// zlib's `Z_DEFAULT_COMPRESSION` is 6, zstd's `ZSTD_CLEVEL_DEFAULT` is 3, lz4-java's
    /// default in Kafka 3.8 is 9 (KIP-390).
    pub fn default_level(self) -> Option<i32> {
        match self {
            CompressionType::Gzip => Some(6),
            CompressionType::Lz4 => Some(9),
            CompressionType::Zstd => Some(3),
            CompressionType::None | CompressionType::Snappy => None,
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the records' bytes look like, for compression (`message_profile` of a producer).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum MessageProfile {
    /// Random bytes: no codec shrinks them (OpenMessaging Benchmark's payload files).
    #[default]
    Random,
    /// Structured application logs, one JSON object per record.
    JsonLogs,
    /// A fixed compressed fraction for every codec (`message_profile = 0.4`).
    Ratio(f64),
}

/// Compressed fraction, per codec at its default level, of JSON application logs in 16 KiB
/// batches (Kafka's default `batch.size`). Measured for kafsim with the reference command
/// line tools on 90 MB of synthetic structured logs (timestamp, level, service, host, 128-bit
/// trace id, HTTP method / path / status / duration / user agent / client ip, user id,
/// message, labels; about 450 bytes a line), cut into 16 KiB chunks: `gzip -6` (zlib) 0.203,
/// `lz4 -1` 0.326, `zstd -3` 0.201. snappy is not installed there; its fraction is lz4's
/// scaled by the two codecs' Silesia-corpus ratios in the zstd README (snappy 1.1.8 2.073,
/// lz4 1.9.2 2.101): 0.330. Random ids and numbers keep logs from compressing further;
/// larger batches compress better (1 MiB chunks: gzip 0.162, lz4 0.276, zstd 0.164), which
/// this single ratio does not model.
const JSON_LOGS: [(CompressionType, f64); 4] = [
    (CompressionType::Gzip, 0.203),
    (CompressionType::Snappy, 0.330),
    (CompressionType::Lz4, 0.326),
    (CompressionType::Zstd, 0.201),
];

/// Compressed size (percent of the Silesia corpus) by level, from lzbench 1.8's table
/// (inikep/lzbench README: one core of an i7-8700K, Silesia corpus): zlib 1.2.11 -1, -6, -9
/// and zstd 1.4.3 -1 to -22. A level between two rows is interpolated linearly; used only to
/// scale a profile's ratio from the codec's default level to another level.
pub const GZIP_LEVELS: [(i32, f64); 3] = [(1, 36.45), (6, 32.19), (9, 31.92)];
pub const ZSTD_LEVELS: [(i32, f64); 8] = [
    (1, 34.68),
    (2, 32.84),
    (5, 30.19),
    (8, 28.67),
    (11, 27.95),
    (15, 26.97),
    (18, 25.33),
    (22, 24.88),
];

/// Linear interpolation in a `(level, value)` table sorted by level, clamped at both ends.
pub fn interpolate(table: &[(i32, f64)], level: i32) -> f64 {
    let first = table[0];
    let last = table[table.len() - 1];
    if level <= first.0 {
        return first.1;
    }
    if level >= last.0 {
        return last.1;
    }
    let i = table.iter().position(|&(l, _)| l >= level).unwrap_or(0);
    let (l0, v0) = table[i - 1];
    let (l1, v1) = table[i];
    v0 + (v1 - v0) * (level - l0) as f64 / (l1 - l0) as f64
}

/// The level a codec runs at: `level` if set (a zlib `-1` is the default), else the
/// default. Negative zstd levels (`--fast`) are treated as level 1.
pub fn effective_level(codec: CompressionType, level: Option<i32>) -> Option<i32> {
    let default = codec.default_level()?;
    Some(match level {
        Some(-1) if codec == CompressionType::Gzip => default,
        Some(l) => l,
        None => default,
    })
}

/// [`Compression::level`] of a codec without levels (zstd's lowest level is -131072).
const NO_LEVEL: i32 = i32::MIN;

/// How one producer compresses its batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Compression {
    pub codec: CompressionType,
    /// The level the codec runs at, [`NO_LEVEL`] for codecs without levels and for `none`
    /// (see [`Compression::level`]): an `Option<i32>` would take 8 bytes, and every record
    /// batch every replica keeps carries a `Compression`.
    level: i32,
    /// Compressed size of the records per thousand bytes (1000 = not compressed).
    pub permille: u16,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::NONE
    }
}

impl Compression {
    pub const NONE: Compression = Compression {
        codec: CompressionType::None,
        level: NO_LEVEL,
        permille: 1000,
    };

    /// `codec` at `level` (`None` = its default) on data of `profile`.
    pub fn new(codec: CompressionType, level: Option<i32>, profile: MessageProfile) -> Compression {
        if codec == CompressionType::None {
            return Compression::NONE;
        }
        let level = effective_level(codec, level);
        let fraction = match profile {
            MessageProfile::Random => 1.0,
            MessageProfile::Ratio(r) => r,
            MessageProfile::JsonLogs => {
                let base = JSON_LOGS
                    .iter()
                    .find(|(c, _)| *c == codec)
                    .map_or(1.0, |(_, f)| *f);
                base * level_scale(codec, level)
            }
        };
        let permille = (fraction * 1000.0).round().clamp(1.0, 1000.0) as u16;
        assert_ne!(
            level,
            Some(NO_LEVEL),
            "{codec:?}: level {NO_LEVEL} is reserved"
        );
        Compression {
            codec,
            level: level.unwrap_or(NO_LEVEL),
            permille,
        }
    }

    /// The level the codec runs at (`None` for codecs without levels and for `none`).
    pub fn level(&self) -> Option<i32> {
        (self.level != NO_LEVEL).then_some(self.level)
    }

    /// Bytes `bytes` of records take once compressed (rounded up).
    pub fn compressed(&self, bytes: u32) -> u32 {
        if self.permille >= 1000 {
            return bytes;
        }
        ((bytes as u64 * self.permille as u64).div_ceil(1000)) as u32
    }
}

/// How a level other than the default changes the compressed size (lzbench ratios).
fn level_scale(codec: CompressionType, level: Option<i32>) -> f64 {
    let (Some(level), Some(default)) = (level, codec.default_level()) else {
        return 1.0;
    };
    let table: &[(i32, f64)] = match codec {
        CompressionType::Gzip => &GZIP_LEVELS,
        CompressionType::Zstd => &ZSTD_LEVELS,
        _ => return 1.0,
    };
    interpolate(table, level) / interpolate(table, default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for c in CompressionType::ALL {
            assert_eq!(CompressionType::from_name(c.name()), Some(c));
        }
        assert_eq!(
            CompressionType::from_name("LZ4"),
            Some(CompressionType::Lz4)
        );
        assert_eq!(CompressionType::from_name("brotli"), None);
    }

    #[test]
    fn random_data_does_not_shrink_and_json_logs_do() {
        let random = Compression::new(CompressionType::Zstd, None, MessageProfile::Random);
        assert_eq!(random.compressed(16_384), 16_384);
        let zstd = Compression::new(CompressionType::Zstd, None, MessageProfile::JsonLogs);
        assert_eq!(zstd.permille, 201);
        assert_eq!(zstd.level(), Some(3));
        let lz4 = Compression::new(CompressionType::Lz4, None, MessageProfile::JsonLogs);
        assert!(lz4.compressed(10_000) > zstd.compressed(10_000));
        assert_eq!(
            Compression::new(CompressionType::None, Some(5), MessageProfile::JsonLogs),
            Compression::NONE
        );
    }

    #[test]
    fn a_fixed_ratio_applies_to_every_codec() {
        for c in [
            CompressionType::Gzip,
            CompressionType::Snappy,
            CompressionType::Lz4,
        ] {
            let comp = Compression::new(c, None, MessageProfile::Ratio(0.4));
            assert_eq!(comp.compressed(1_000), 400);
        }
    }

    #[test]
    fn higher_levels_compress_smaller() {
        let at = |l| Compression::new(CompressionType::Zstd, Some(l), MessageProfile::JsonLogs);
        assert!(at(1).permille > at(3).permille);
        assert!(at(3).permille > at(19).permille);
        // Level 2 is a table row: 0.201 × 32.84 / (32.84 + (30.19 - 32.84) / 3).
        assert_eq!(at(2).permille, 207);
        let gzip_default =
            Compression::new(CompressionType::Gzip, Some(-1), MessageProfile::JsonLogs);
        assert_eq!(gzip_default.level(), Some(6));
        assert_eq!(gzip_default.permille, 203);
    }

    #[test]
    fn interpolation_is_clamped_and_linear() {
        assert_eq!(interpolate(&GZIP_LEVELS, 0), 36.45);
        assert_eq!(interpolate(&GZIP_LEVELS, 12), 31.92);
        assert!((interpolate(&ZSTD_LEVELS, 3) - (32.84 - 2.65 / 3.0)).abs() < 1e-9);
    }
}
