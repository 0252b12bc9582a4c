//! The producer's compression settings in each client's words: `compression.type` (and
//! kafka-go's codec constants), librdkafka's and sarama's one `compression.level`, Java
//! 3.8+'s per-codec levels (KIP-390).

use super::{version_at_least, ClientKind, ProducerConfig};
use crate::compression::CompressionType;
use crate::config::ConfigValue;

impl ProducerConfig {
    /// `compression.level`: librdkafka and sarama apply one level to whichever codec is set.
    pub(super) fn set_compression_level(&mut self, value: &ConfigValue) -> Result<(), String> {
        let (level, default) = match self.client {
            // librdkafka CONFIGURATION.md: compression.level, -1 .. 12, -1 = codec default.
            ClientKind::Librdkafka => (value.as_int_in(-1, 12)? as i32, -1),
            // sarama Config.Producer.CompressionLevel; CompressionLevelDefault = -1000.
            ClientKind::Sarama => (value.as_int_in(-1000, 22)? as i32, -1000),
            ClientKind::Java => {
                return Err(
                    "compression.level: the Java producer sets the level per codec: \
                     compression.gzip.level, compression.lz4.level or compression.zstd.level \
                     (Kafka 3.8+, KIP-390)"
                        .into(),
                )
            }
            ClientKind::KafkaGo => {
                return Err(
                    "compression.level: the kafka-go Writer has no compression level \
                     (its codecs run at their default levels)"
                        .into(),
                )
            }
        };
        self.compression_levels.clear();
        if level != default {
            for codec in CompressionType::ALL {
                self.compression_levels.push((codec, level));
            }
        }
        Ok(())
    }

    /// Java 3.8+'s per-codec level keys (KIP-390, `ProducerConfig.COMPRESSION_*_LEVEL`).
    pub(super) fn set_java_compression_level(
        &mut self,
        key: &str,
        value: &ConfigValue,
    ) -> Result<(), String> {
        if self.client != ClientKind::Java {
            return Err(format!(
                "{key} is the Java producer's name (3.8+); {} uses compression.level",
                self.client.name()
            ));
        }
        if !version_at_least(&self.client_version, (3, 8)) {
            return Err(format!(
                "{key}: the Java producer has per-codec levels since 3.8 (KIP-390); this \
                 producer is {}",
                self.client_version
            ));
        }
        let codec = match key {
            "compression.gzip.level" => CompressionType::Gzip,
            "compression.lz4.level" => CompressionType::Lz4,
            _ => CompressionType::Zstd,
        };
        let (lo, hi) = codec.java_level_range().expect("leveled codec");
        let level = value.as_int_in(lo as i64, hi as i64)? as i32;
        self.compression_levels.retain(|(c, _)| *c != codec);
        self.compression_levels.push((codec, level));
        Ok(())
    }

    /// The level of the configured codec, if one was set.
    pub fn compression_level(&self) -> Option<i32> {
        self.compression_levels
            .iter()
            .find(|(c, _)| *c == self.compression)
            .map(|(_, l)| *l)
    }
}

/// A codec name; kafka-go spells them as its constants too (`kafka.Gzip`, ...).
pub(super) fn codec_value(value: &ConfigValue, kafka_go: bool) -> Result<CompressionType, String> {
    let name = value.as_str()?;
    let trimmed = if kafka_go {
        name.trim_start_matches("kafka.")
    } else {
        name
    };
    CompressionType::from_name(trimmed).ok_or_else(|| {
        format!("unknown codec \"{name}\": expected one of none, gzip, snappy, lz4, zstd")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Configurable;

    fn config(client: &str, version: Option<&str>) -> ProducerConfig {
        ProducerConfig::for_client(client, version).unwrap()
    }

    fn text(s: &str) -> ConfigValue {
        ConfigValue::Str(s.to_string())
    }

    #[test]
    fn every_client_takes_compression_type() {
        for client in ["java", "sarama", "kafka-go", "librdkafka"] {
            let mut c = config(client, None);
            assert_eq!(c.compression, CompressionType::None, "{client} default");
            for codec in CompressionType::ALL {
                c.set("compression.type", &text(codec.name())).unwrap();
                assert_eq!(c.compression, codec, "{client}");
            }
            c.set("compression.type", &text("ZSTD")).unwrap();
            c.validate().unwrap();
            let e = c.set("compression.type", &text("brotli")).unwrap_err();
            assert!(e.contains("none, gzip, snappy, lz4, zstd"), "{e}");
        }
    }

    #[test]
    fn each_client_has_its_own_spelling() {
        let mut r = config("librdkafka", None);
        r.set("compression.codec", &text("lz4")).unwrap();
        assert_eq!(r.compression, CompressionType::Lz4);
        let mut g = config("kafka-go", None);
        g.set("kafka-go.Compression", &text("kafka.Snappy"))
            .unwrap();
        assert_eq!(g.compression, CompressionType::Snappy);
        let mut j = config("java", None);
        let e = j.set("compression.codec", &text("lz4")).unwrap_err();
        assert!(e.contains("librdkafka"), "{e}");
        let e = j.set("kafka-go.Compression", &text("lz4")).unwrap_err();
        assert!(e.contains("kafka-go Writer field"), "{e}");
    }

    #[test]
    fn levels_by_client() {
        let mut r = config("librdkafka", None);
        r.set("compression.type", &text("gzip")).unwrap();
        r.set("compression.level", &ConfigValue::Int(9)).unwrap();
        assert_eq!(r.compression_level(), Some(9));
        r.set("compression.level", &ConfigValue::Int(-1)).unwrap();
        assert_eq!(r.compression_level(), None, "-1 is the codec's default");
        assert!(r.set("compression.level", &ConfigValue::Int(13)).is_err());
        let mut s = config("sarama", None);
        s.set("compression.type", &text("zstd")).unwrap();
        s.set("compression.level", &ConfigValue::Int(7)).unwrap();
        assert_eq!(s.compression_level(), Some(7));
        let mut j = config("java", None);
        let e = j
            .set("compression.level", &ConfigValue::Int(3))
            .unwrap_err();
        assert!(e.contains("compression.zstd.level"), "{e}");
        j.set("compression.type", &text("zstd")).unwrap();
        j.set("compression.zstd.level", &ConfigValue::Int(9))
            .unwrap();
        j.set("compression.gzip.level", &ConfigValue::Int(1))
            .unwrap();
        assert_eq!(j.compression_level(), Some(9));
        assert!(j
            .set("compression.lz4.level", &ConfigValue::Int(18))
            .is_err());
        let mut old = config("java", Some("3.7"));
        let e = old
            .set("compression.zstd.level", &ConfigValue::Int(9))
            .unwrap_err();
        assert!(e.contains("3.8"), "{e}");
        let mut g = config("kafka-go", None);
        let e = g
            .set("compression.level", &ConfigValue::Int(1))
            .unwrap_err();
        assert!(e.contains("no compression level"), "{e}");
        let e = s
            .set("compression.zstd.level", &ConfigValue::Int(1))
            .unwrap_err();
        assert!(e.contains("compression.level"), "{e}");
    }

    #[test]
    fn java_has_zstd_since_2_1() {
        let mut old = config("java", Some("2.0"));
        old.set("compression.type", &text("zstd")).unwrap();
        let e = old.validate().unwrap_err();
        assert!(e.contains("KIP-110"), "{e}");
        let mut ok = config("java", Some("2.1"));
        ok.set("compression.type", &text("zstd")).unwrap();
        ok.validate().unwrap();
    }
}
