//! Writes simulated rows as RowBinary to stdout, for `benches/queries.sh`:
//!
//!   cargo run --release --example load_token_use -- token_use 10000000 | \
//!     curl --data-binary @- "$URL/?query=INSERT%20INTO%20db.token_use%20(...)%20FORMAT%20RowBinary"
//!
//! `token_use N`: N token-use rows. The simulator's ground truth (seed 42, default world)
//! is the template; it is repeated with its times shifted by the simulated span and job and
//! pipeline ids offset, so the distribution of projects, actors and actions stays realistic
//! while generation stays fast. The whole history is then shifted to end an hour before now. `allowlist_changes`, `token_lifecycle`, `jobs`: the rows the
//! pipeline would store for the same simulated stream (N is ignored).
//! `columns <table>` prints the insert column list.

use std::collections::HashSet;
use std::io::{BufWriter, Write};

use tokentrail::model::{AuditMeaning, Event};
use tokentrail::simulate::{self, SimConfig};
use tokentrail::store::tables::{self, Table};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let table = args.first().map(String::as_str).unwrap_or("token_use");
    let n: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let out = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 20, out);
    if table == "columns" {
        let name = args.get(1).map(String::as_str).unwrap_or("token_use");
        let t = Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .expect("table name");
        writeln!(out, "{}", t.columns().join(", "))?;
        return Ok(());
    }
    let cfg = SimConfig::default();
    let (messages, truth) = simulate::generate(&cfg);
    let mut buf = Vec::with_capacity(1 << 16);
    if table == "token_use" {
        let template = &truth.token_uses;
        let first = template.first().map_or(0, |u| u.event_time_ms);
        let span = template.last().map_or(1, |u| u.event_time_ms - first + 1);
        // The history ends an hour ago, as a live deployment's does: every earlier day can be
        // sealed, and only today's hours are read from token_use.
        let rounds = n.div_ceil(template.len() as u64) as i64;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let shift = now_ms - 3_600_000 - (first + rounds * span);
        for i in 0..n {
            let round = (i / template.len() as u64) as i64;
            let mut u = template[(i % template.len() as u64) as usize].clone();
            u.event_time_ms += round * span + shift;
            u.job_id = u.job_id.map(|j| j + round * 10_000_000);
            u.pipeline_id = u.pipeline_id.map(|p| p + round * 10_000_000);
            buf.clear();
            tables::token_use::encode(&u, &format!("bench-{i:010}"), 1, &mut buf);
            out.write_all(&buf)?;
        }
        return out.flush();
    }
    let mut seen = HashSet::new();
    for m in &messages {
        for event in m.normalize("bench").events {
            buf.clear();
            match (&event, table) {
                (Event::Audit(ev), "allowlist_changes" | "token_lifecycle") => {
                    if !seen.insert(ev.dedup_key.clone()) {
                        continue;
                    }
                    match (&ev.meaning, table) {
                        (AuditMeaning::Allowlist(c), "allowlist_changes") => {
                            tables::encode_allowlist_change(ev, c, &mut buf)
                        }
                        (AuditMeaning::TokenLifecycle(t), "token_lifecycle") => {
                            tables::encode_token_lifecycle(ev, t, &mut buf)
                        }
                        _ => {}
                    }
                }
                (Event::Webhook(wh), "jobs") => {
                    for job in &wh.jobs {
                        tables::encode_job(job, wh.event_time_ms, &mut buf);
                    }
                }
                _ => {}
            }
            out.write_all(&buf)?;
        }
    }
    out.flush()
}
