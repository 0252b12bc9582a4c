//! `--sweep "name=v1,v2,..."`: the parameters of a sweep and the grid of runs they span.
//!
//! Names are Kafka property names of a producer (`linger.ms`, `acks`, ..., set on every
//! producer of the workload), a consumer (`fetch.min.bytes`, `max.poll.records`, ..., every
//! consumer group) or a broker (`min.insync.replicas`, `log.flush.interval.messages`, ...,
//! `[cluster.config]`), or the topic keys `partitions` and `replication_factor` (every topic).
//! The engine's property tables (`Configurable::known_keys`) say which family a name is in; a
//! name several families know (`retry.backoff.ms`, `request.timeout.ms`) takes a prefix
//! (`producer.`, `consumer.`, `broker.`, `topic.`). The grid is the cartesian product, in the
//! order the sweeps were given (the last one varies fastest), bounded by [`MAX_RUNS`].

use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::config::Configurable;
use kafsim_engine::consumer::config::ConsumerConfig;
use kafsim_engine::producer::config::ProducerConfig;
use kafsim_sim::scenario::Scenario;

/// Most runs one sweep may ask for.
pub const MAX_RUNS: usize = 256;
/// Most values one parameter may take.
pub const MAX_VALUES: usize = 64;

/// Topic-level sweep names.
pub const TOPIC_KEYS: [&str; 2] = ["partitions", "replication_factor"];

/// What a swept name sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `partitions` / `replication_factor` of every topic.
    Topic,
    /// A broker property (`[cluster.config]`).
    Broker,
    /// A consumer property of every consumer group.
    Consumer,
    /// A producer property of every producer.
    Producer,
}

impl Family {
    const ALL: [Family; 4] = [
        Family::Producer,
        Family::Consumer,
        Family::Broker,
        Family::Topic,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Family::Topic => "topic",
            Family::Broker => "broker",
            Family::Consumer => "consumer",
            Family::Producer => "producer",
        }
    }

    fn knows(self, key: &str) -> bool {
        match self {
            Family::Topic => TOPIC_KEYS.contains(&key),
            Family::Broker => BrokerConfig::default().known_keys().contains(&key),
            Family::Consumer => consumer_keys().contains(&key),
            Family::Producer => producer_keys().contains(&key),
        }
    }

    /// Whether the workload has something this family sets.
    fn present(self, s: &Scenario) -> bool {
        match self {
            Family::Topic => !s.topics.is_empty(),
            Family::Broker => true,
            Family::Consumer => !s.consumer_groups.is_empty(),
            Family::Producer => !s.producers.is_empty(),
        }
    }
}

fn consumer_keys() -> &'static [&'static str] {
    ConsumerConfig::for_client("java", None)
        .map(|c| c.known_keys())
        .unwrap_or(&[])
}

fn producer_keys() -> &'static [&'static str] {
    ProducerConfig::for_client("java", None)
        .map(|c| c.known_keys())
        .unwrap_or(&[])
}

/// The family a swept `name` sets in workload `s`, and the property name without its prefix.
pub fn family<'n>(name: &'n str, s: &Scenario) -> Result<(Family, &'n str), String> {
    // A prefix picks the family, unless the whole name is a property of its own
    // (`broker.session.timeout.ms` is a broker property, not `session.timeout.ms`).
    let prefixed = name.split_once('.').and_then(|(prefix, key)| {
        let f = Family::ALL.into_iter().find(|f| f.prefix() == prefix)?;
        Some((f, key))
    });
    if let Some((f, key)) = prefixed.filter(|(f, key)| f.knows(key)) {
        if !f.present(s) {
            return Err(format!(
                "--sweep {name}: the workload has no {}s to set it on",
                f.prefix()
            ));
        }
        return Ok((f, key));
    }
    if let Some((f, key)) = prefixed.filter(|_| !Family::ALL.iter().any(|g| g.knows(name))) {
        return Err(format!(
            "--sweep {name}: \"{key}\" is not a {} {} kafsim models",
            f.prefix(),
            if f == Family::Topic {
                "key"
            } else {
                "property"
            }
        ));
    }
    let knowing: Vec<Family> = Family::ALL.into_iter().filter(|f| f.knows(name)).collect();
    let present: Vec<Family> = knowing.iter().copied().filter(|f| f.present(s)).collect();
    match (knowing.as_slice(), present.as_slice()) {
        ([], _) => Err(format!(
            "--sweep {name}: not a producer, consumer or broker property kafsim models, nor \
             `partitions` / `replication_factor` (docs/scenarios.md lists them)"
        )),
        (_, [one]) => Ok((*one, name)),
        (_, []) => Err(format!(
            "--sweep {name}: a {} property, and the workload has no {}s",
            knowing[0].prefix(),
            knowing[0].prefix()
        )),
        (_, several) => {
            let forms: Vec<String> = several
                .iter()
                .map(|f| format!("{}.{name}", f.prefix()))
                .collect();
            Err(format!(
                "--sweep {name}: several families have this property; write {}",
                forms.join(" or ")
            ))
        }
    }
}

/// One swept parameter and its values, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub values: Vec<String>,
}

/// Parse one `--sweep` argument.
pub fn parse(arg: &str) -> Result<Parameter, String> {
    let (name, values) = arg.split_once('=').ok_or_else(|| {
        format!("--sweep {arg:?}: expected name=v1,v2,... (e.g. linger.ms=0,5,20)")
    })?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "--sweep {arg:?}: the parameter name is empty or has spaces"
        ));
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err(format!(
            "--sweep {arg:?}: an empty value (two commas, or a trailing comma)"
        ));
    }
    if values.len() > MAX_VALUES {
        return Err(format!(
            "--sweep {arg:?}: at most {MAX_VALUES} values per parameter"
        ));
    }
    let mut seen: Vec<&String> = Vec::new();
    for v in &values {
        if seen.contains(&v) {
            return Err(format!("--sweep {arg:?}: value {v:?} is listed twice"));
        }
        seen.push(v);
    }
    Ok(Parameter {
        name: name.to_string(),
        values,
    })
}

/// Every assignment of the grid, each `[(name, value), ...]` in parameter order.
pub fn grid(parameters: &[Parameter]) -> Result<Vec<Vec<(String, String)>>, String> {
    for (i, p) in parameters.iter().enumerate() {
        if parameters[..i].iter().any(|q| q.name == p.name) {
            return Err(format!("--sweep {}: the parameter is swept twice", p.name));
        }
    }
    let runs = parameters
        .iter()
        .try_fold(1usize, |n, p| n.checked_mul(p.values.len()))
        .filter(|n| *n <= MAX_RUNS)
        .ok_or_else(|| format!("the sweep asks for more than {MAX_RUNS} runs"))?;
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let mut rest = i;
        let mut point = vec![(String::new(), String::new()); parameters.len()];
        for (slot, p) in parameters.iter().enumerate().rev() {
            point[slot] = (p.name.clone(), p.values[rest % p.values.len()].clone());
            rest /= p.values.len();
        }
        out.push(point);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_values() {
        assert_eq!(
            parse("linger.ms=0, 5,20").unwrap(),
            Parameter {
                name: "linger.ms".into(),
                values: vec!["0".into(), "5".into(), "20".into()]
            }
        );
        assert!(parse("linger.ms").is_err());
        assert!(parse("=1,2").is_err());
        assert!(parse("linger.ms=1,,2").is_err());
        assert!(parse("linger.ms=1,1").is_err());
    }

    #[test]
    fn the_grid_is_the_cartesian_product_last_fastest() {
        let g = grid(&[parse("a=1,2").unwrap(), parse("b=x,y,z").unwrap()]).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(
            g[0],
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert_eq!(
            g[1],
            vec![("a".into(), "1".into()), ("b".into(), "y".into())]
        );
        assert_eq!(
            g[5],
            vec![("a".into(), "2".into()), ("b".into(), "z".into())]
        );
        assert_eq!(grid(&[]).unwrap(), vec![Vec::<(String, String)>::new()]);
    }

    fn workload(groups: bool) -> Scenario {
        let text = format!(
            "name = \"w\"\n[cluster]\nbrokers = 3\n[[topics]]\nname = \"t\"\n\
             [[producers]]\ntopic = \"t\"\nrate = 10\n{}",
            if groups {
                "[[consumer_groups]]\ngroup = \"g\"\ntopics = [\"t\"]\n"
            } else {
                ""
            }
        );
        kafsim_sim::scenario::parse("w.toml", &text).unwrap()
    }

    #[test]
    fn each_name_sets_its_family() {
        let s = workload(true);
        for (name, expected, key) in [
            ("min.insync.replicas", Family::Broker, "min.insync.replicas"),
            (
                "log.flush.interval.messages",
                Family::Broker,
                "log.flush.interval.messages",
            ),
            ("fetch.min.bytes", Family::Consumer, "fetch.min.bytes"),
            ("fetch.max.wait.ms", Family::Consumer, "fetch.max.wait.ms"),
            ("max.poll.records", Family::Consumer, "max.poll.records"),
            ("partitions", Family::Topic, "partitions"),
            ("replication_factor", Family::Topic, "replication_factor"),
            ("linger.ms", Family::Producer, "linger.ms"),
            ("acks", Family::Producer, "acks"),
            (
                "consumer.retry.backoff.ms",
                Family::Consumer,
                "retry.backoff.ms",
            ),
            (
                "producer.retry.backoff.ms",
                Family::Producer,
                "retry.backoff.ms",
            ),
            ("topic.partitions", Family::Topic, "partitions"),
            (
                "broker.min.insync.replicas",
                Family::Broker,
                "min.insync.replicas",
            ),
            (
                "broker.session.timeout.ms",
                Family::Broker,
                "broker.session.timeout.ms",
            ),
        ] {
            assert_eq!(family(name, &s), Ok((expected, key)), "{name}");
        }
    }

    #[test]
    fn unknown_ambiguous_or_absent_names_are_refused_with_a_way_out() {
        let s = workload(true);
        let e = family("retry.backoff.ms", &s).unwrap_err();
        assert!(
            e.contains("producer.retry.backoff.ms or consumer.retry.backoff.ms"),
            "{e}"
        );
        // Only producers here: the name is not ambiguous any more.
        assert_eq!(
            family("retry.backoff.ms", &workload(false)),
            Ok((Family::Producer, "retry.backoff.ms"))
        );
        let e = family("fetch.min.bytes", &workload(false)).unwrap_err();
        assert!(e.contains("no consumers"), "{e}");
        let e = family("consumer.fetch.min.bytes", &workload(false)).unwrap_err();
        assert!(e.contains("no consumers"), "{e}");
        let e = family("no.such.key", &s).unwrap_err();
        assert!(
            e.contains("not a producer, consumer or broker property"),
            "{e}"
        );
        let e = family("broker.linger.ms", &s).unwrap_err();
        assert!(e.contains("not a broker property"), "{e}");
    }

    #[test]
    fn oversized_or_repeated_sweeps_are_refused() {
        let big: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let p = parse(&format!("a={}", big.join(","))).unwrap();
        let q = parse(&format!("b={}", big.join(","))).unwrap();
        assert!(grid(&[p.clone(), q]).is_err());
        assert!(grid(&[p.clone(), p]).is_err());
    }
}
