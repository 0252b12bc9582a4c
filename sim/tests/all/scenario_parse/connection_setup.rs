//! The connection setup and socket timeout keys (`socket.connection.setup.timeout.ms`,
//! `.max.ms`, sarama `Net.DialTimeout`, kafka-go `Transport.DialTimeout` / `Dialer.Timeout`,
//! librdkafka `socket.timeout.ms`): accepted where the client has them, an error at the
//! property's line with a hint where it does not.

use super::*;

pub(super) fn prepare_err(text: &str) -> ScenarioError {
    let s = parse(text).unwrap_or_else(|e| panic!("{e}"));
    match kafsim_sim::runner::prepare(s) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

pub(super) fn prepares(text: &str) -> kafsim_sim::runner::Prepared {
    kafsim_sim::runner::prepare(parse(text).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The design example's producer as `client` at `version`, with `config` lines added.
fn producer_as(client: &str, version: &str, config: &str) -> String {
    edited(
        "client = \"sarama\"\nclient_version = \"1.43\"",
        &format!("client = \"{client}\"\nclient_version = \"{version}\""),
    )
    .replacen(
        "partitioner = \"sarama-hash\"\n",
        &format!("partitioner = \"sarama-hash\"\n{config}"),
        1,
    )
    .replacen("acks = \"1\"\n\"enable.idempotence\" = false\n", "", 1)
    .replacen("partitioner = \"sarama-hash\"\n", "", 1)
}

/// The design example's group as `client`, with `config` lines added.
pub(super) fn group_as(client: &str, config: &str) -> String {
    edited(
        "client = \"sarama\"\ntopics = [\"orders\"]",
        &format!("client = \"{client}\"\ntopics = [\"orders\"]"),
    )
    .replacen(
        "\"auto.offset.reset\" = \"earliest\"\n",
        &format!("\"auto.offset.reset\" = \"earliest\"\n{config}"),
        1,
    )
    .replacen("commit = \"auto\"  ", "commit = \"sync\"  ", 1)
}

#[test]
fn each_client_takes_its_own_connection_setup_key() {
    let ms = kafsim_engine::Duration::from_millis;
    let p = prepares(&producer_as(
        "sarama",
        "1.43",
        "\"Net.DialTimeout\" = \"5s\"\n",
    ));
    assert_eq!(
        p.producer_configs()[0].connection_setup,
        (ms(5_000), ms(5_000))
    );
    let p = prepares(&producer_as(
        "java",
        "3.9",
        "\"socket.connection.setup.timeout.ms\" = 2000\n\
         \"socket.connection.setup.timeout.max.ms\" = 4000\n",
    ));
    assert_eq!(
        p.producer_configs()[0].connection_setup,
        (ms(2_000), ms(4_000))
    );
    let p = prepares(&producer_as(
        "kafka-go",
        "0.4.47",
        "\"Transport.DialTimeout\" = \"2s\"\n",
    ));
    assert_eq!(p.producer_configs()[0].connection_setup.0, ms(2_000));
    let p = prepares(&group_as("kafka-go", "\"Dialer.Timeout\" = \"7s\"\n"));
    assert_eq!(
        p.consumer_configs()[0].connection_setup,
        (ms(7_000), ms(7_000))
    );
    let p = prepares(&group_as("sarama", "\"Net.DialTimeout\" = \"4s\"\n"));
    assert_eq!(
        p.consumer_configs()[0].connection_setup,
        (ms(4_000), ms(4_000))
    );
}

#[test]
fn a_connection_setup_key_a_client_lacks_is_an_error_at_its_line() {
    // Only Java's timeout grows.
    let text = producer_as(
        "sarama",
        "1.43",
        "\"socket.connection.setup.timeout.max.ms\" = 40000\n",
    );
    let e = prepare_err(&text);
    assert_eq!(
        e.key, "producers[0].config.socket.connection.setup.timeout.max.ms",
        "{e}"
    );
    assert_eq!(e.line, line_of(&text, "timeout.max.ms"), "{e}");
    assert!(e.to_string().contains("Net.DialTimeout"), "{e}");
    // Java before KIP-601 has no such property.
    let text = producer_as(
        "java",
        "2.6",
        "\"socket.connection.setup.timeout.ms\" = 5000\n",
    );
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "setup.timeout.ms"), "{e}");
    assert!(e.to_string().contains("2.7"), "{e}");
    // Not a number of milliseconds.
    let text = group_as(
        "java",
        "\"socket.connection.setup.timeout.ms\" = \"soon\"\n",
    );
    let e = prepare_err(&text);
    assert_eq!(
        e.key, "consumer_groups[0].config.socket.connection.setup.timeout.ms",
        "{e}"
    );
    assert_eq!(e.line, line_of(&text, "setup.timeout.ms"), "{e}");
    // A Go duration is a kafka-go Reader's, not sarama's Dialer.
    let text = group_as("sarama", "\"Dialer.Timeout\" = \"5s\"\n");
    let e = parse(&text)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            kafsim_sim::runner::prepare(s)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap_err();
    assert!(e.contains("Dialer.Timeout"), "{e}");
}

#[test]
fn socket_timeout_is_librdkafkas_and_its_request_timeout_the_brokers() {
    let ms = kafsim_engine::Duration::from_millis;
    let p = prepares(&producer_as(
        "librdkafka",
        "2.6.0",
        "\"request.timeout.ms\" = 5000\n\"socket.timeout.ms\" = 20000\n",
    ));
    let c = p.producer_configs()[0];
    assert_eq!((c.request_timeout, c.ack_timeout), (ms(20_000), ms(5_000)));
    let text = producer_as("java", "3.9", "\"socket.timeout.ms\" = 20000\n");
    let e = prepare_err(&text);
    assert_eq!(e.key, "producers[0].config.socket.timeout.ms", "{e}");
    assert_eq!(e.line, line_of(&text, "socket.timeout.ms"), "{e}");
    assert!(e.to_string().contains("request.timeout.ms"), "{e}");
}

#[test]
fn a_librdkafka_consumer_takes_socket_timeout_not_request_timeout() {
    let store = "\"enable.auto.offset.store\" = false\n";
    let p = prepares(&group_as(
        "librdkafka",
        &format!("{store}\"socket.timeout.ms\" = 20000\n"),
    ));
    assert_eq!(
        p.consumer_configs()[0].request_timeout,
        kafsim_engine::Duration::from_secs(20)
    );
    let text = group_as(
        "librdkafka",
        &format!("{store}\"request.timeout.ms\" = 20000\n"),
    );
    let e = prepare_err(&text);
    assert_eq!(e.key, "consumer_groups[0].config.request.timeout.ms", "{e}");
    assert_eq!(e.line, line_of(&text, "request.timeout.ms"), "{e}");
    assert!(e.to_string().contains("socket.timeout.ms"), "{e}");
}
