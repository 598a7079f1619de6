//! Every metric tokentrail exports, in one place. Names are part of the public contract
//! (dashboards and alerts depend on them); change them only with a changelog entry.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Kafka messages consumed, by topic.
    pub consumed: IntCounterVec,
    /// Normalized events, by source (`audit_stream`, `webhook`).
    pub events: IntCounterVec,
    /// Rows acknowledged by ClickHouse, by table.
    pub stored_rows: IntCounterVec,
    /// Messages (or batched-array elements, or store-rejected rows) dead-lettered, by reason.
    pub dead_lettered: IntCounterVec,
    /// Batches written and committed.
    pub batches: IntCounter,
    /// Rows per written batch.
    pub batch_rows: Histogram,
    /// Encoded bytes per written batch.
    pub batch_bytes: Histogram,
    /// Seconds per INSERT request, by table.
    pub insert_latency: HistogramVec,
    /// Insert attempts that failed transiently and were retried.
    pub insert_retries: IntCounter,
    /// Seconds from the oldest Kafka timestamp in a batch to its commit.
    pub end_to_end_lag: Histogram,
    /// Offsets behind the high watermark, by topic and partition (from librdkafka statistics).
    pub consumer_lag: IntGaugeVec,
    /// Rebalance callbacks, by kind (`assign`, `revoke`, `error`).
    pub rebalances: IntCounterVec,
    /// Offset commits that Kafka refused (retried on the next commit).
    pub commit_failures: IntCounter,
    /// 1 while consumption is paused for back-pressure.
    pub paused: IntGauge,
    /// Audit partitions paused now because they ran ahead of the slowest while the
    /// correlator held more than `correlate.align_pending` events (watermark alignment).
    pub partitions_aligning: IntGauge,
    /// Pauses of audit partitions for watermark alignment, one per partition paused.
    pub alignment_pauses: IntCounter,
    /// 1 while every assigned partition is committed to its high watermark
    /// (`ingest::caught_up`); checked about once a second while ingest is idle.
    pub caught_up: IntGauge,
    /// Transient Kafka errors the consumer or the dead-letter producer rode out (retried with
    /// backoff), by librdkafka error code (`AllBrokersDown`, `MessageTimedOut`, ...).
    pub kafka_errors: IntCounterVec,
    /// Dead-letter copies whose payload was cut to `dead_letter.max_payload_bytes` (the
    /// original length and SHA-256 travel in headers).
    pub dead_letter_truncated: IntCounter,
    /// Correlator counters, by kind (`late_events`, `duplicates`, `evicted_pending_auths`,
    /// ...; the names are listed in `ingest::process::correlator_counters`).
    pub correlator: IntCounterVec,
    /// What the correlator holds right now, by kind (`pending_auths`, `allowlist_versions`,
    /// ...; listed in `ingest::process::correlator_sizes`).
    pub correlator_state: IntGaugeVec,
    /// Token-use records emitted, by correlation method.
    pub token_uses: IntCounterVec,
    /// SIEM records acknowledged by the sink, by sink (`kafka`, `syslog`, `hec`).
    pub siem_delivered: IntCounterVec,
    /// Failed SIEM delivery attempts (each is retried or stops the export), by sink.
    pub siem_failures: IntCounterVec,
    /// `tokentrail gitlab …`: GitLab API requests, by outcome (`ok`, `rate_limited`,
    /// `server_error`, `transport_error`, `refused`).
    pub gitlab_requests: IntCounterVec,
    /// `tokentrail gitlab …`: audit-topic messages produced, by kind (`snapshot`, `drift`,
    /// `backfill`, `auth_log`).
    pub gitlab_produced: IntCounterVec,
    /// Collector: HTTP requests answered, by route (configured path) and status code.
    pub collect_requests: IntCounterVec,
    /// Collector: requests refused for a wrong or missing token or signature, by route.
    pub collect_unauthorized: IntCounterVec,
    /// Collector: Kafka messages acknowledged, by topic.
    pub collect_produced: IntCounterVec,
    /// Collector: requests not accepted, by reason (`invalid_json`, `too_large`,
    /// `overloaded`, `timeout`, `kafka_unavailable`, ...).
    pub collect_rejected: IntCounterVec,
    /// Collector: seconds from request start to answer, by route.
    pub collect_latency: HistogramVec,
    /// Collector: requests being handled right now.
    pub collect_in_flight: IntGauge,
    /// New alerts delivered (outputs acknowledged), by rule.
    pub alerts: IntCounterVec,
    /// Alert rows written (new alerts and suppressed repeats), by rule.
    pub alert_rows: IntCounterVec,
    /// Seconds from the triggering event's time to the paging outputs (Kafka topic, webhook)
    /// acknowledging the alert row; to the `alerts` table write when neither is configured.
    pub alert_latency: Histogram,
    /// Seconds from the triggering event's time to the rules engine raising the alert row, by
    /// rule: GitLab's delivery, Kafka and the correlation hold, without batching and outputs.
    pub alert_raise_latency: HistogramVec,
    /// Ingest's sealing passes over token_use's ended days (`store::seal`), by outcome
    /// (`ok`, `error`).
    pub seal_passes: IntCounterVec,
    /// Days of token_use sealed (first sealings and re-sealings after late rows).
    pub sealed_days: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Fine around the 5 s alerting objective, so its p99 can be read off the histogram.
const ALERT_LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.5, 10.0, 15.0, 30.0, 60.0,
    300.0,
];
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("tokentrail".into()), None).expect("registry");
        let insert_latency = HistogramVec::new(
            HistogramOpts::new("insert_latency_seconds", "Seconds per ClickHouse INSERT")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["table"],
        )
        .expect("valid metric");
        r.register(Box::new(insert_latency.clone()))
            .expect("unique metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "consumer_lag",
                "Offsets behind the partition high watermark",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        r.register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        let paused = gauge(&r, "consumer_paused", "1 while consumption is paused");
        let partitions_aligning = gauge(
            &r,
            "partitions_aligning",
            "Audit partitions paused while the slowest catches up",
        );
        let caught_up = gauge(
            &r,
            "ingest_caught_up",
            "1 while every assigned partition is committed to its high watermark",
        );
        let alert_raise_latency = HistogramVec::new(
            HistogramOpts::new(
                "alert_raise_latency_seconds",
                "Seconds from the triggering event time to the alert being raised, by rule",
            )
            .buckets(ALERT_LATENCY_BUCKETS.to_vec()),
            &["rule"],
        )
        .expect("valid metric");
        r.register(Box::new(alert_raise_latency.clone()))
            .expect("unique metric");
        let collect_latency = HistogramVec::new(
            HistogramOpts::new("collect_request_seconds", "Seconds per collector request")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        r.register(Box::new(collect_latency.clone()))
            .expect("unique metric");
        let correlator_state = IntGaugeVec::new(
            Opts::new("correlator_state_size", "Items the correlator holds"),
            &["kind"],
        )
        .expect("valid metric");
        r.register(Box::new(correlator_state.clone()))
            .expect("unique metric");
        let collect_in_flight = gauge(
            &r,
            "collect_in_flight_requests",
            "Collector requests being handled",
        );
        Metrics {
            seal_passes: counter_vec(
                &r,
                "seal_passes_total",
                "Sealing passes over ended days of token_use, by outcome",
                &["outcome"],
            ),
            sealed_days: counter(&r, "sealed_days_total", "Days of token_use sealed"),
            consumed: counter_vec(
                &r,
                "messages_consumed_total",
                "Kafka messages consumed",
                &["topic"],
            ),
            events: counter_vec(
                &r,
                "events_normalized_total",
                "Normalized events",
                &["source"],
            ),
            stored_rows: counter_vec(
                &r,
                "rows_stored_total",
                "Rows acknowledged by ClickHouse",
                &["table"],
            ),
            dead_lettered: counter_vec(
                &r,
                "dead_lettered_total",
                "Items handed to the dead-letter topic (their batch is committed only once Kafka acknowledged them)",
                &["reason"],
            ),
            batches: counter(&r, "batches_total", "Batches written and committed"),
            batch_rows: histogram(
                &r,
                "batch_rows",
                "Rows per batch",
                prometheus::exponential_buckets(10.0, 4.0, 8).expect("buckets"),
            ),
            batch_bytes: histogram(
                &r,
                "batch_bytes",
                "Encoded bytes per batch",
                prometheus::exponential_buckets(1024.0, 4.0, 9).expect("buckets"),
            ),
            insert_latency,
            insert_retries: counter(
                &r,
                "insert_retries_total",
                "Transient insert failures retried",
            ),
            end_to_end_lag: histogram(
                &r,
                "end_to_end_lag_seconds",
                "Seconds from Kafka timestamp to commit",
                LAG_BUCKETS.to_vec(),
            ),
            consumer_lag,
            rebalances: counter_vec(
                &r,
                "rebalances_total",
                "Consumer group rebalances",
                &["kind"],
            ),
            commit_failures: counter(
                &r,
                "commit_failures_total",
                "Offset commits refused by Kafka",
            ),
            paused,
            partitions_aligning,
            alignment_pauses: counter(
                &r,
                "alignment_pauses_total",
                "Audit partitions paused because they ran ahead of the slowest",
            ),
            caught_up,
            kafka_errors: counter_vec(
                &r,
                "kafka_errors_total",
                "Transient Kafka errors retried with backoff",
                &["kind"],
            ),
            dead_letter_truncated: counter(
                &r,
                "dead_letter_truncated_total",
                "Dead-letter copies whose payload was truncated to fit the topic",
            ),
            correlator: counter_vec(
                &r,
                "correlator_events_total",
                "Correlator events, by kind",
                &["kind"],
            ),
            correlator_state,
            token_uses: counter_vec(
                &r,
                "token_use_records_total",
                "Token-use records emitted",
                &["correlation"],
            ),
            siem_delivered: counter_vec(
                &r,
                "siem_delivered_total",
                "SIEM records acknowledged by the sink",
                &["sink"],
            ),
            siem_failures: counter_vec(
                &r,
                "siem_delivery_failures_total",
                "Failed SIEM delivery attempts",
                &["sink"],
            ),
            gitlab_requests: counter_vec(
                &r,
                "gitlab_requests_total",
                "GitLab API requests made by tokentrail gitlab, by outcome",
                &["outcome"],
            ),
            gitlab_produced: counter_vec(
                &r,
                "gitlab_produced_total",
                "Messages tokentrail gitlab produced to the audit topic, by kind",
                &["kind"],
            ),
            collect_requests: counter_vec(
                &r,
                "collect_requests_total",
                "Collector requests answered",
                &["route", "status"],
            ),
            collect_unauthorized: counter_vec(
                &r,
                "collect_unauthorized_total",
                "Collector requests with a wrong or missing token or signature",
                &["route"],
            ),
            collect_produced: counter_vec(
                &r,
                "collect_messages_produced_total",
                "Collector messages acknowledged by Kafka",
                &["topic"],
            ),
            collect_rejected: counter_vec(
                &r,
                "collect_rejected_total",
                "Collector requests not accepted",
                &["reason"],
            ),
            collect_latency,
            collect_in_flight,
            alerts: counter_vec(
                &r,
                "alerts_total",
                "New alerts delivered, by rule",
                &["rule"],
            ),
            alert_rows: counter_vec(
                &r,
                "alert_rows_total",
                "Alert rows written (new and suppressed repeats), by rule",
                &["rule"],
            ),
            alert_latency: histogram(
                &r,
                "alert_latency_seconds",
                "Seconds from the triggering event time to the alert outputs acknowledging it",
                ALERT_LATENCY_BUCKETS.to_vec(),
            ),
            alert_raise_latency,
            registry: r,
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("utf8 metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
