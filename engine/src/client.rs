//! The client libraries kafsim models, shared by the producer and consumer profiles.

/// A modelled Kafka client library (`client = "..."` in scenario files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientKind {
    Java,
    Sarama,
    KafkaGo,
    Librdkafka,
}

impl ClientKind {
    pub const ALL: [ClientKind; 4] = [
        ClientKind::Java,
        ClientKind::Sarama,
        ClientKind::KafkaGo,
        ClientKind::Librdkafka,
    ];

    pub fn from_name(name: &str) -> Result<ClientKind, String> {
        match name {
            "java" => Ok(ClientKind::Java),
            "sarama" => Ok(ClientKind::Sarama),
            "kafka-go" => Ok(ClientKind::KafkaGo),
            "librdkafka" => Ok(ClientKind::Librdkafka),
            other => Err(format!(
                "unknown client \"{other}\": expected java, sarama, kafka-go or librdkafka"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Java => "java",
            ClientKind::Sarama => "sarama",
            ClientKind::KafkaGo => "kafka-go",
            ClientKind::Librdkafka => "librdkafka",
        }
    }
}

impl std::fmt::Display for ClientKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
