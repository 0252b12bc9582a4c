//! The `[[groups]]` of a scenario: each group's consumer configuration, its topics, its
//! application handler and output topic, checked against what its client can do (a
//! `produce_to` needs a client with a producer; a loop mark needs a processing loop). Apart
//! from the rest of validation because groups combine a consumer, a handler and a producer,
//! and each combination rule cites the client it comes from.

use super::{Check, MAX_CLIENTS, R};
use crate::scenario::raw::{RawConfig, RawGroup, S};
use crate::scenario::{handler, ClientKind, GroupSpec, HandlerSpec, TopicSpec};
use kafsim_engine::config::ConfigValue;

impl Check<'_> {
    pub(super) fn groups(&self, raw: &[RawGroup], topics: &[TopicSpec]) -> R<Vec<GroupSpec>> {
        let mut groups: Vec<GroupSpec> = Vec::new();
        for (i, g) in raw.iter().enumerate() {
            let at = format!("consumer_groups[{i}]");
            // Two tables with one `group` are two services (two handlers, two sinks) whose
            // members join the same Kafka group: each gets only part of the partitions.
            let group = self.non_empty(&g.group, &format!("{at}.group"))?;
            let client = self.client(&g.client, &format!("{at}.client"))?;
            let handler = handler::handler(self, &g.handler, &format!("{at}.handler"), topics)?;
            self.mark_fits_loop(&g.handler.mark, &g.config, &at, client, &handler)?;
            self.produce_to_fits_client(g, &at, client)?;
            groups.push(GroupSpec {
                group,
                members: self.count_or(&g.members, &format!("{at}.members"), 1, MAX_CLIENTS, 1)?,
                client,
                client_version: self.version(&g.client_version, &format!("{at}.client_version"))?,
                topics: self.group_topics(&g.topics, &format!("{at}.topics"), topics)?,
                config: self.properties(&g.config),
                handler,
                standalone: None,
            });
        }
        Ok(groups)
    }

    /// `produce_to` needs the Java client (its `KafkaProducer` beside the consumer is what
    /// kafsim models), and `commit = "transaction"` a client with a transactional producer;
    /// the output topic must not be one the group reads (every output would be read again).
    fn produce_to_fits_client(&self, g: &RawGroup, at: &str, client: ClientKind) -> R<()> {
        let Some(topic) = &g.handler.produce_to else {
            return Ok(());
        };
        let key = format!("{at}.handler.produce_to");
        let transactional = g
            .handler
            .commit
            .as_ref()
            .is_some_and(|c| c.get_ref() == "transaction");
        if transactional && client != ClientKind::Java {
            let message = match client {
                ClientKind::KafkaGo => "commit = \"transaction\": kafka-go has no transactional \
                                        producer (segmentio/kafka-go writes without transactions)"
                    .to_string(),
                ClientKind::Librdkafka => "commit = \"transaction\": librdkafka's transactional \
                                           producer is modelled for [[producers]] only; its \
                                           consume-transform-produce \
                                           (rd_kafka_send_offsets_to_transaction beside a \
                                           librdkafka consumer) is not modelled"
                    .to_string(),
                other => format!(
                    "commit = \"transaction\": kafsim models the Java producer's transactions \
                     only; {}'s transactional producer is not modelled yet",
                    other.name()
                ),
            };
            let commit = g.handler.commit.as_ref().expect("checked");
            return Err(self.err_hint(
                commit,
                &format!("{at}.handler.commit"),
                message,
                "use client = \"java\" for consume-transform-produce in a transaction",
            ));
        }
        if client != ClientKind::Java {
            return Err(self.err_hint(
                topic,
                &key,
                format!(
                    "produce_to is modelled for the Java client (a KafkaProducer in the \
                     consumer's process); this group's client is {}",
                    client.name()
                ),
                "use client = \"java\"",
            ));
        }
        let reads = g
            .topics
            .get_ref()
            .iter()
            .any(|t| t.get_ref() == topic.get_ref());
        if reads {
            return Err(self.err_hint(
                topic,
                &key,
                format!(
                    "produce_to = \"{}\" is a topic this group consumes: every output would \
                     be read and written again",
                    topic.get_ref()
                ),
                "write the outputs to a topic of their own",
            ));
        }
        Ok(())
    }

    /// A `mark` written in the handler must be one the client's consume loop can honour
    /// (kafka-go's ReadMessage and librdkafka's automatic offset store mark at delivery;
    /// Java's auto-commit commits positions): see `kafsim_engine::consumer::consume_loop`.
    pub fn mark_fits_loop(
        &self,
        mark: &Option<S<String>>,
        config: &RawConfig,
        at: &str,
        client: ClientKind,
        handler: &HandlerSpec,
    ) -> R<()> {
        let Some(mark) = mark else {
            return Ok(());
        };
        let flag = |name: &str| {
            config
                .0
                .iter()
                .find_map(|(k, v)| match (&v.0, k.get_ref() == name) {
                    (ConfigValue::Bool(b), true) => Some(*b),
                    _ => None,
                })
        };
        let conflict = kafsim_engine::consumer::consume_loop::mark_conflict(
            client,
            handler.mark,
            handler.commit,
            flag("enable.auto.commit").unwrap_or(true),
            flag("enable.auto.offset.store").unwrap_or(true),
        );
        match conflict {
            Some((message, hint)) => {
                Err(self.err_hint(mark, &format!("{at}.handler.mark"), message, hint))
            }
            None => Ok(()),
        }
    }

    fn group_topics(
        &self,
        value: &S<Vec<S<String>>>,
        key: &str,
        topics: &[TopicSpec],
    ) -> R<Vec<String>> {
        if value.get_ref().is_empty() {
            return Err(self.err(value, key, "a group must subscribe to at least one topic"));
        }
        let mut out: Vec<String> = Vec::new();
        for (i, t) in value.get_ref().iter().enumerate() {
            let name = self.existing_topic(t, &format!("{key}[{i}]"), topics)?;
            if out.contains(&name) {
                return Err(self.err(
                    t,
                    &format!("{key}[{i}]"),
                    format!("topic \"{name}\" is listed twice"),
                ));
            }
            out.push(name);
        }
        Ok(out)
    }
}
