//! Fixed-rate load generator for `tokentrail collect` (used by `benches/collect_load.sh`).
//!
//! Requests are scheduled at `--rate` per second, bounded by `--duration` and `--requests`,
//! and sent over `--connections` keep-alive HTTP/1.1 connections. Latency is measured from
//! each request's *scheduled* time, so a slow server shows up as latency instead of quietly
//! lowering the offered rate (no coordinated omission, unlike a closed-loop tool such as wrk).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

#[derive(Parser)]
struct Args {
    /// Collector address.
    #[arg(long, default_value = "127.0.0.1:18080")]
    addr: SocketAddr,
    #[arg(long, default_value = "/gitlab/audit-events")]
    path: String,
    /// Value of X-Gitlab-Event-Streaming-Token.
    #[arg(long)]
    token: String,
    /// File with the request body (a GitLab audit event).
    #[arg(long)]
    body: std::path::PathBuf,
    /// Requests per second offered.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Stop scheduling after this many seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Stop scheduling after this many requests.
    #[arg(long, default_value_t = 50_000)]
    requests: u64,
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    ok: u64,
    unavailable: u64,
    other: u64,
    errors: u64,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(
    args: Arc<Args>,
    body: Bytes,
    schedule: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut sender: Option<Sender> = None;
    loop {
        let Some(scheduled) = schedule.lock().await.recv().await else {
            return out;
        };
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(args.addr).await.ok();
        }
        let Some(s) = sender.as_mut() else {
            out.errors += 1;
            continue;
        };
        let request = hyper::Request::post(args.path.as_str())
            .header("host", "collector")
            .header("x-gitlab-event-streaming-token", args.token.as_str())
            .header(
                "x-gitlab-audit-event-type",
                "user_authenticated_using_job_token",
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(body.clone()))
            .expect("request");
        let result = match s.ready().await {
            Ok(()) => s.send_request(request).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                out.latencies.push(scheduled.elapsed());
                match status {
                    200..=299 => out.ok += 1,
                    503 => out.unavailable += 1,
                    _ => out.other += 1,
                }
            }
            Err(_) => {
                out.errors += 1;
                sender = None;
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let body = Bytes::from(std::fs::read(&args.body).expect("read --body"));
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(worker(args.clone(), body.clone(), rx.clone())))
        .collect();

    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let deadline = started + Duration::from_secs(args.duration);
    let mut scheduled = 0u64;
    let mut next = started;
    while scheduled < args.requests && next < deadline {
        tokio::time::sleep_until(next.into()).await;
        // Catch up in a burst if the timer fell behind: the offered rate stays fixed.
        while next <= Instant::now() && scheduled < args.requests && next < deadline {
            let _ = tx.send(next);
            scheduled += 1;
            next += interval;
        }
    }
    drop(tx);
    let mut total = Outcome::default();
    for w in workers {
        let o = w.await.expect("worker");
        total.latencies.extend(o.latencies);
        total.ok += o.ok;
        total.unavailable += o.unavailable;
        total.other += o.other;
        total.errors += o.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = total.latencies;
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "offered {} req/s for {:.1} s: {} scheduled, {} completed ({:.0} req/s), \
         2xx {}, 503 {}, other {}, transport errors {}",
        args.rate,
        elapsed,
        scheduled,
        l.len(),
        l.len() as f64 / elapsed,
        total.ok,
        total.unavailable,
        total.other,
        total.errors
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(percentile(&l, 50.0)),
        ms(percentile(&l, 90.0)),
        ms(percentile(&l, 99.0)),
        ms(percentile(&l, 99.9)),
        ms(l.last().copied().unwrap_or_default())
    );
}
