//! Turns normalized events into encoded rows of the batch. Pure apart from appending bytes:
//! which tables an event fills is decided here and nowhere else.

use super::batch::Batch;
use crate::alert::Alert;
use crate::model::{AuditMeaning, Event, TokenUse};
use crate::store::block::TopicPartition;
use crate::store::tables::{self, KafkaOrigin, Table};

/// Appends the rows of one event; returns how many rows it produced.
pub fn push_event_rows(
    batch: &mut Batch,
    tp: &TopicPartition,
    offset: i64,
    event: &Event,
    ingested_at_ms: i64,
) -> usize {
    let origin = KafkaOrigin {
        topic: &tp.0,
        partition: tp.1,
        offset,
    };
    let mut rows = 1;
    match event {
        Event::Audit(ev) => {
            batch.push_row(Table::AuditEvents, tp, offset, |b| {
                tables::encode_audit_event(ev, origin, ingested_at_ms, b)
            });
            match &ev.meaning {
                AuditMeaning::Allowlist(change) => {
                    rows += 1;
                    batch.push_row(Table::AllowlistChanges, tp, offset, |b| {
                        tables::encode_allowlist_change(ev, change, b)
                    });
                }
                AuditMeaning::TokenLifecycle(tl) => {
                    rows += 1;
                    batch.push_row(Table::TokenLifecycle, tp, offset, |b| {
                        tables::encode_token_lifecycle(ev, tl, b)
                    });
                }
                _ => {}
            }
        }
        Event::Webhook(wh) => {
            batch.push_row(Table::WebhookEvents, tp, offset, |b| {
                tables::encode_webhook_event(wh, origin, ingested_at_ms, b)
            });
            for job in &wh.jobs {
                rows += 1;
                batch.push_row(Table::Jobs, tp, offset, |b| {
                    tables::encode_job(job, wh.event_time_ms, b)
                });
            }
        }
    }
    rows
}

/// Appends a token-use record. `record_key` makes replays replace rather than duplicate.
pub fn push_token_use(
    batch: &mut Batch,
    tp: &TopicPartition,
    offset: i64,
    record: &TokenUse,
    record_key: &str,
    ingested_at_ms: i64,
) {
    batch.push_row(Table::TokenUse, tp, offset, |b| {
        tables::token_use::encode(record, record_key, ingested_at_ms, b)
    });
}

/// Appends an alert row. It rides in the same batch as the record or event that raised it,
/// so it becomes durable (and its outputs are acknowledged) before their offsets commit.
pub fn push_alert(
    batch: &mut Batch,
    tp: &TopicPartition,
    offset: i64,
    alert: &Alert,
    version: i64,
) {
    batch.push_row(Table::Alerts, tp, offset, |b| {
        tables::alerts::encode(alert, version, b)
    });
}
