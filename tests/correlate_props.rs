//! Order-independence of the join: the same events in any arrival order bounded by the
//! lateness give the same records.

#[path = "correlate_common/mod.rs"]
mod common;

use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use tokentrail::correlate::{Correlator, CorrelatorConfig};
use tokentrail::model::{ActorKind, AuditEvent, AuditMeaning, Correlation, TokenUse};

const T0: i64 = 1_750_000_000_000;

#[derive(Debug, Clone)]
enum Kind {
    Pair(i64),
    AuthOnly,
    ResourceOnly,
    Lineage,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        // GitLab writes the auth before the resource event: gaps are never negative.
        6 => (0..=WINDOW).prop_map(Kind::Pair),
        2 => Just(Kind::AuthOnly),
        1 => Just(Kind::ResourceOnly),
        1 => Just(Kind::Lineage),
    ]
}

/// Arrival order: sort by `t + jitter`, jitter in `[0, max_jitter]` from a seeded xorshift.
fn arrival(events: &[AuditEvent], seed: u64, max_jitter: i64) -> Vec<AuditEvent> {
    let mut x = seed | 1;
    let mut keyed: Vec<(i64, usize)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (e.created_at_ms + (x % (max_jitter as u64 + 1)) as i64, i)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| events[i].clone()).collect()
}

fn cfg(lateness: Option<i64>) -> CorrelatorConfig {
    CorrelatorConfig {
        auto_lateness_ms: lateness,
        max_hold_ms: i64::MAX / 4,
        ..CorrelatorConfig::default()
    }
}

/// Streams with the automatic watermark, then flushes.
fn stream(events: &[AuditEvent], lateness: i64) -> (Vec<TokenUse>, Correlator) {
    let mut c = Correlator::new(cfg(Some(lateness)));
    let mut out: Vec<TokenUse> = events.iter().flat_map(|e| c.on_audit(e)).collect();
    out.extend(c.flush_all());
    (out, c)
}

/// Streams with explicit `advance` calls every `every` events.
fn stream_manual(events: &[AuditEvent], lateness: i64, every: usize) -> Vec<TokenUse> {
    let mut c = Correlator::new(cfg(None));
    let mut wm = tokentrail::correlate::WatermarkTracker::new(lateness);
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        out.extend(c.on_audit(e));
        let w = wm.observe(e.created_at_ms);
        if i % every == 0 {
            out.extend(c.advance(w));
        }
    }
    out.extend(c.flush_all());
    out
}

fn sorted(mut v: Vec<TokenUse>) -> Vec<TokenUse> {
    v.sort_by_cached_key(|r| format!("{r:?}"));
    v
}

/// Well-separated jobs: ground truth is known without any matching logic.
fn scenario(jobs: &[(i64, u8, Kind, i64)]) -> (Vec<AuditEvent>, Vec<TokenUse>, u64) {
    let mut next_base: HashMap<(i64, u8), i64> = HashMap::new();
    let (mut events, mut expected, mut unmatched) = (Vec::new(), Vec::new(), 0);
    for (idx, (author, ip_n, kind, extra)) in jobs.iter().enumerate() {
        let idx = idx as i64;
        let ip = format!("10.0.0.{ip_n}");
        let slot = next_base.entry((*author, *ip_n)).or_insert(T0 + extra);
        let t = *slot;
        // Next job of this key: items of different jobs are more than `2 * WINDOW` apart.
        *slot = t + 3 * WINDOW + 1 + extra;
        let src_path = format!("src/p{idx}");
        let dst_path = format!("dst/p{idx}");
        let (src, dst) = (
            (100 + idx, src_path.as_str()),
            (10_000 + idx, dst_path.as_str()),
        );
        let rec = |time: i64, gap: i64| TokenUse {
            event_time_ms: time,
            actor_id: *author,
            actor_name: format!("user-{author}"),
            actor_username: None,
            actor_kind: ActorKind::Human,
            source_project_id: Some(src.0),
            source_project_path: src.1.to_string(),
            target_project_id: Some(dst.0),
            target_project_path: dst.1.to_string(),
            action: "repository.read".into(),
            job_id: Some(idx),
            pipeline_id: None,
            git_ref: None,
            runner_id: None,
            token_type: "ci_job_token".to_string(),
            ip_address: ip.clone(),
            same_project: false,
            allowlisted: None,
            correlation: Correlation::Matched,
            gap_ms: gap,
        };
        match kind {
            Kind::Pair(gap) => {
                events.push(auth(*author, &ip, t, src, idx));
                events.push(resource(*author, &ip, t + gap, dst, "repository.read"));
                expected.push(rec(t + gap, *gap));
            }
            Kind::AuthOnly => {
                events.push(auth(*author, &ip, t, src, idx));
                expected.push(TokenUse {
                    target_project_id: None,
                    target_project_path: String::new(),
                    action: "auth".into(),
                    correlation: Correlation::AuthOnly,
                    ..rec(t, 0)
                });
            }
            Kind::ResourceOnly => {
                events.push(resource(*author, &ip, t, dst, "repository.read"));
                unmatched += 1;
            }
            Kind::Lineage => {
                events.push(downstream(*author, &ip, t, dst, src.1, 7));
                expected.push(TokenUse {
                    source_project_id: None,
                    action: "pipeline.trigger".into(),
                    job_id: None,
                    pipeline_id: Some(7),
                    correlation: Correlation::Lineage,
                    ..rec(t, 0)
                });
            }
        }
    }
    (events, sorted(expected), unmatched)
}

/// Independent oracle for arbitrary events: per key, all candidate pairs by
/// `(gap, auth (t, dedup), resource (t, dedup))` over pairs with `0 <= gap <= window`,
/// greedy 1:1.
fn oracle_pairs(events: &[AuditEvent]) -> Vec<(String, String)> {
    type Sides<'a> = (Vec<&'a AuditEvent>, Vec<&'a AuditEvent>);
    let mut by_key: HashMap<(i64, &str), Sides> = HashMap::new();
    for e in events {
        let slot = by_key
            .entry((e.author_id, e.ip_address.as_str()))
            .or_default();
        match e.meaning {
            AuditMeaning::JobTokenAuth { .. } => slot.0.push(e),
            _ => slot.1.push(e),
        }
    }
    let mut pairs = Vec::new();
    for (auths, ress) in by_key.values() {
        let mut cands = Vec::new();
        for a in auths {
            for r in ress {
                let gap = r.created_at_ms - a.created_at_ms;
                if (0..=WINDOW).contains(&gap) {
                    let ak = (a.created_at_ms, a.dedup_key.as_str());
                    let rk = (r.created_at_ms, r.dedup_key.as_str());
                    cands.push((gap.abs(), gap < 0, ak, rk));
                }
            }
        }
        cands.sort();
        let (mut used_a, mut used_r) = (Vec::new(), Vec::new());
        for (_, _, ak, rk) in cands {
            if !used_a.contains(&ak) && !used_r.contains(&rk) {
                used_a.push(ak);
                used_r.push(rk);
                pairs.push((ak.1.to_string(), rk.1.to_string()));
            }
        }
    }
    pairs.sort();
    pairs
}

fn dense_events(spec: &[(i64, u8, bool, i64)]) -> Vec<AuditEvent> {
    spec.iter()
        .enumerate()
        .map(|(i, (author, ip_n, is_auth, t))| {
            let ip = format!("10.1.0.{ip_n}");
            let i = i as i64;
            if *is_auth {
                auth(*author, &ip, T0 + t, (100 + i, "src/x"), i)
            } else {
                resource(*author, &ip, T0 + t, (10_000 + i, "dst/x"), "artifact.read")
            }
        })
        .collect()
}

/// `(job_id, target_project_id)` per matched record, as dedup keys, for the oracle.
fn matched_pairs(out: &[TokenUse], events: &[AuditEvent]) -> Vec<(String, String)> {
    let find = |pred: &dyn Fn(&AuditEvent) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .map(|e| e.dedup_key.clone())
            .unwrap()
    };
    let mut pairs: Vec<_> = out
        .iter()
        .filter(|r| r.correlation == Correlation::Matched)
        .map(|r| {
            let a = find(&|e| e.target_id == r.job_id && e.target_type == "Ci::Build");
            let t = find(&|e| e.entity_id == r.target_project_id && e.target_id.is_none());
            (a, t)
        })
        .collect();
    pairs.sort();
    pairs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn separated_jobs_match_ground_truth_in_any_order(
        jobs in prop::collection::vec((1i64..=4, 0u8..3, kind(), 0i64..20_000), 1..40),
        seed in any::<u64>(),
        every in 1usize..7,
    ) {
        let (events, expected, unmatched) = scenario(&jobs);
        let shuffled = arrival(&events, seed, WINDOW);

        let (out, c) = stream(&shuffled, WINDOW);
        prop_assert_eq!(sorted(out), expected.clone());
        prop_assert_eq!(c.stats().unmatched_resources, unmatched);
        prop_assert_eq!(c.stats().late_events, 0);

        prop_assert_eq!(sorted(stream_manual(&shuffled, WINDOW, every)), expected.clone());

        let mut all_at_once = Correlator::new(cfg(None));
        let mut out: Vec<_> = shuffled.iter().rev().flat_map(|e| all_at_once.on_audit(e)).collect();
        out.extend(all_at_once.flush_all());
        prop_assert_eq!(sorted(out), expected);
    }

    #[test]
    fn dense_events_are_order_independent_and_match_oracle(
        spec in prop::collection::vec((1i64..=2, 0u8..2, any::<bool>(), 0i64..40_000), 1..60),
        seed_a in any::<u64>(),
        seed_b in any::<u64>(),
    ) {
        let events = dense_events(&spec);
        let lateness = 2 * WINDOW;
        let (a, _) = stream(&arrival(&events, seed_a, lateness), lateness);
        let (b, cb) = stream(&arrival(&events, seed_b, lateness), lateness);
        let a = sorted(a);
        prop_assert_eq!(&a, &sorted(b));
        prop_assert_eq!(matched_pairs(&a, &events), oracle_pairs(&events));

        let n_auth = spec.iter().filter(|s| s.2).count() as u64;
        let n_res = spec.len() as u64 - n_auth;
        let s = cb.stats();
        prop_assert_eq!(s.matched + s.auth_only, n_auth);
        prop_assert_eq!(s.matched + s.unmatched_resources, n_res);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Under eviction and forced holds, every auth is still emitted exactly once and every
    /// resource is either matched once or counted unmatched.
    #[test]
    fn bounded_state_loses_nothing(
        spec in prop::collection::vec((1i64..=3, 0u8..2, any::<bool>(), 0i64..200_000), 1..120),
        max_pending in 1usize..20,
        max_hold in 0i64..40_000,
        seed in any::<u64>(),
    ) {
        let events = dense_events(&spec);
        let mut c = Correlator::new(CorrelatorConfig {
            max_pending,
            max_hold_ms: max_hold,
            auto_lateness_ms: Some(3_000),
            ..CorrelatorConfig::default()
        });
        let mut out: Vec<TokenUse> =
            arrival(&events, seed, 3_000).iter().flat_map(|e| c.on_audit(e)).collect();
        out.extend(c.flush_all());
        let mut jobs: Vec<i64> = out.iter().filter_map(|r| r.job_id).collect();
        jobs.sort_unstable();
        let mut expected: Vec<i64> = (0..spec.len() as i64).filter(|&i| spec[i as usize].2).collect();
        expected.sort_unstable();
        prop_assert_eq!(jobs, expected);
        let mut targets: Vec<i64> = out.iter().filter_map(|r| r.target_project_id).collect();
        let n = targets.len();
        targets.dedup();
        prop_assert_eq!(targets.len(), n, "a resource was used twice");
        let s = c.stats();
        let n_res = spec.iter().filter(|s| !s.2).count() as u64;
        prop_assert_eq!(s.matched + s.unmatched_resources, n_res);
        prop_assert_eq!((s.pending_auths, s.pending_resources, s.pending_keys), (0, 0, 0));
    }
}
