//! `--sweep "name=v1,v2,..."`: the parameters of a sweep and the grid of runs they span.
//!
//! Names are producer properties by their Java names (`linger.ms`, `batch.size`, `acks`, ...,
//! applied to every producer of the workload) or the topic keys `partitions` and
//! `replication_factor` (applied to every topic). The grid is the cartesian product, in the
//! order the sweeps were given (the last one varies fastest), bounded by [`MAX_RUNS`].

/// Most runs one sweep may ask for.
pub const MAX_RUNS: usize = 256;
/// Most values one parameter may take.
pub const MAX_VALUES: usize = 64;

/// Topic-level sweep names (everything else is a producer property).
pub const TOPIC_KEYS: [&str; 2] = ["partitions", "replication_factor"];

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

    #[test]
    fn oversized_or_repeated_sweeps_are_refused() {
        let big: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let p = parse(&format!("a={}", big.join(","))).unwrap();
        let q = parse(&format!("b={}", big.join(","))).unwrap();
        assert!(grid(&[p.clone(), q]).is_err());
        assert!(grid(&[p.clone(), p]).is_err());
    }
}
