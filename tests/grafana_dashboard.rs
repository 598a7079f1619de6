//! deploy/grafana/tokentrail.json queries only metrics that tokentrail exports: every
//! `tokentrail_*` name in a panel's or variable's query is checked against the names, kinds
//! and labels registered in src/telemetry/metrics.rs (read from the source, so a renamed
//! metric breaks this test rather than a dashboard in production).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Metric {
    kind: Kind,
    labels: BTreeSet<String>,
}

/// (start, end) byte ranges of the string literals in `src` (contents only), and a copy of
/// `src` with their contents blanked, so parentheses or commas inside help texts do not count.
fn literals(src: &str) -> (Vec<(usize, usize)>, String) {
    let bytes = src.as_bytes();
    let mut masked = bytes.to_vec();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    masked[i] = b' ';
                    i += 1;
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 3,
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        masked[i] = b'x';
                        i += 1;
                    }
                    masked[i] = b'x';
                    i += 1;
                }
                out.push((start, i));
                i += 1;
            }
            _ => i += 1,
        }
    }
    (out, String::from_utf8(masked).unwrap())
}

/// The metrics registered in src/telemetry/metrics.rs, by full name (namespace included).
fn exported() -> BTreeMap<String, Metric> {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/telemetry/metrics.rs"
    ))
    .unwrap();
    let (lits, masked) = literals(&src);
    let text = |&(s, e): &(usize, usize)| &src[s..e];
    // The registry's namespace: Registry::new_custom(Some("tokentrail".into()), …).
    let namespace = lits
        .iter()
        .find(|(s, _)| masked[..s - 1].trim_end().ends_with("new_custom(Some("))
        .map(text)
        .expect("Registry::new_custom(Some(namespace))");
    // A metric's name is the first argument of a metric constructor or of the file's
    // helpers, which take the registry first: preceded by `::new(` or by `&r,`.
    let names: Vec<usize> = (0..lits.len())
        .filter(|&i| {
            let before = masked[..lits[i].0 - 1].trim_end();
            let name = text(&lits[i]);
            (before.ends_with("::new(") || before.ends_with("&r,"))
                && !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        })
        .collect();
    assert!(
        names.len() >= 10,
        "found {} metric names: is the parser still right?",
        names.len()
    );
    let mut metrics = BTreeMap::new();
    for (n, &i) in names.iter().enumerate() {
        let (start, end) = lits[i];
        // Its constructor: back to the end of the previous statement or field.
        let ctx_start = [";", "),", "{"]
            .iter()
            .filter_map(|d| masked[..start].rfind(d))
            .max()
            .unwrap_or(0);
        let ctx = &masked[ctx_start..start];
        let kind = if ctx.contains("Histogram") || ctx.contains("histogram(") {
            Kind::Histogram
        } else if ctx.contains("Gauge") || ctx.contains("gauge(") {
            Kind::Gauge
        } else {
            Kind::Counter
        };
        // Its labels: the `&[…]` list before the next statement or the next metric.
        let seg_end = [
            masked[end..].find(';').map(|p| p + end),
            names.get(n + 1).map(|&j| lits[j].0),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(src.len());
        let mut labels = BTreeSet::new();
        if let Some(open) = masked[end..seg_end].find("&[").map(|p| p + end) {
            let close = masked[open..].find(']').unwrap() + open;
            labels.extend(
                lits.iter()
                    .filter(|(s, _)| *s > open && *s < close)
                    .map(|l| text(l).to_string()),
            );
        }
        metrics.insert(
            format!("{namespace}_{}", text(&lits[i])),
            Metric { kind, labels },
        );
    }
    metrics
}

/// Every PromQL expression in the dashboard: panel targets (rows included) and variables.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((
                    p["title"].as_str().unwrap_or("?").to_string(),
                    t["expr"].as_str().unwrap_or("").to_string(),
                ));
            }
            panels(&p["panels"], out);
        }
    }
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = v["query"]["query"].as_str().or(v["query"].as_str());
        if let (Some(q), true) = (query, v["type"] == "query") {
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

fn identifiers(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("tokentrail_"))
        .collect()
}

/// Labels named in `by (…)`, `without (…)` and `{label=…}` selectors.
fn labels_used(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in ["by", "without"] {
        let mut rest = expr;
        while let Some(p) = rest.find(kw) {
            let after = rest[p + kw.len()..].trim_start();
            let word_start = p == 0 || !rest.as_bytes()[p - 1].is_ascii_alphanumeric();
            if word_start && after.starts_with('(') {
                let close = after.find(')').unwrap();
                out.extend(
                    after[1..close]
                        .split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            }
            rest = &rest[p + kw.len()..];
        }
    }
    let mut rest = expr;
    while let Some(p) = rest.find('{') {
        let close = rest[p..].find('}').unwrap() + p;
        for m in rest[p + 1..close].split(',') {
            if let Some(l) = m.split(['=', '!']).next() {
                let l = l.trim();
                if !l.is_empty() && !l.starts_with('{') {
                    out.push(l.to_string());
                }
            }
        }
        rest = &rest[close..];
    }
    out
}

/// What is wrong with a dashboard's queries, one line each.
fn problems(dashboard: &Value, metrics: &BTreeMap<String, Metric>) -> Vec<String> {
    // Labels Prometheus adds when scraping (job, instance, Kubernetes service discovery).
    let target_labels = [
        "job",
        "instance",
        "namespace",
        "pod",
        "service",
        "container",
    ];
    let mut bad = Vec::new();
    let qs = queries(dashboard);
    if qs.is_empty() {
        bad.push("no queries".into());
    }
    for (panel, expr) in &qs {
        let mut allowed: BTreeSet<String> = target_labels.iter().map(|s| s.to_string()).collect();
        let ids = identifiers(expr);
        if ids.is_empty() {
            bad.push(format!("{panel}: {expr:?} names no tokentrail metric"));
        }
        for id in ids {
            let resolved = metrics.get(id).map(|m| (m, false)).or_else(|| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| id.strip_suffix(s).and_then(|base| metrics.get(base)))
                    .map(|m| (m, true))
            });
            match resolved {
                None => bad.push(format!("{panel}: unknown metric {id}")),
                Some((m, suffixed)) => {
                    if m.kind == Kind::Histogram && !suffixed {
                        bad.push(format!(
                            "{panel}: {id} is a histogram: query _bucket, _sum or _count"
                        ));
                    }
                    if m.kind != Kind::Histogram && suffixed {
                        bad.push(format!(
                            "{panel}: {id}: only histograms have _bucket/_sum/_count"
                        ));
                    }
                    if m.kind == Kind::Histogram && id.ends_with("_bucket") {
                        allowed.insert("le".into());
                    }
                    allowed.extend(m.labels.iter().cloned());
                }
            }
        }
        for l in labels_used(expr) {
            if !allowed.contains(&l) {
                bad.push(format!(
                    "{panel}: label {l} is not a label of the metrics in {expr:?}"
                ));
            }
        }
    }
    bad
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/tokentrail.json"
    ))
    .unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

#[test]
fn metric_names_parsed_from_the_code() {
    let m = exported();
    assert_eq!(m["tokentrail_insert_latency_seconds"].kind, Kind::Histogram);
    assert_eq!(
        m["tokentrail_insert_latency_seconds"].labels,
        BTreeSet::from(["table".to_string()])
    );
    assert_eq!(m["tokentrail_batch_rows"].kind, Kind::Histogram);
    assert_eq!(m["tokentrail_consumer_lag"].kind, Kind::Gauge);
    assert_eq!(m["tokentrail_consumer_paused"].kind, Kind::Gauge);
    assert_eq!(
        m["tokentrail_collect_requests_total"].labels,
        BTreeSet::from(["route".to_string(), "status".to_string()])
    );
    assert!(m["tokentrail_batches_total"].labels.is_empty());
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    let bad = problems(&dashboard(), &exported());
    assert!(
        bad.is_empty(),
        "deploy/grafana/tokentrail.json:\n{}",
        bad.join("\n")
    );
}

/// The list: throughput, lag, batch and insert latency, dead letters, alert latency,
/// collector answers each have a panel.
#[test]
fn the_dashboard_covers_the_operational_questions() {
    let all: String = queries(&dashboard())
        .into_iter()
        .map(|(_, q)| q)
        .collect::<Vec<_>>()
        .join("\n");
    for m in [
        "tokentrail_messages_consumed_total",
        "tokentrail_consumer_lag",
        "tokentrail_end_to_end_lag_seconds_bucket",
        "tokentrail_batch_rows_bucket",
        "tokentrail_insert_latency_seconds_bucket",
        "tokentrail_dead_lettered_total",
        "tokentrail_alert_raise_latency_seconds_bucket",
        "tokentrail_collect_requests_total",
    ] {
        assert!(all.contains(m), "no panel queries {m}");
    }
}

/// The check can fail: a misspelt name, a bare histogram, a wrong label are each caught.
#[test]
fn wrong_queries_are_caught() {
    let metrics = exported();
    let mut d = dashboard();
    let p = d["panels"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["targets"].is_array())
        .unwrap();
    p["targets"] = serde_json::json!([
        {"expr": "rate(tokentrail_messages_consumed[5m])"},
        {"expr": "tokentrail_insert_latency_seconds"},
        {"expr": "sum by (queue) (rate(tokentrail_dead_lettered_total[5m]))"},
        {"expr": "rate(tokentrail_batches_total_bucket[5m])"},
    ]);
    let bad = problems(&d, &metrics).join("\n");
    for expected in [
        "unknown metric tokentrail_messages_consumed",
        "tokentrail_insert_latency_seconds is a histogram",
        "label queue",
        "only histograms",
    ] {
        assert!(bad.contains(expected), "{expected} not caught in:\n{bad}");
    }
}
