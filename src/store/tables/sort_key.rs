//! Each table's `ORDER BY` key, read from an encoded row, so the writer can send a table's
//! rows in the order MergeTree stores them.
//!
//! Why: MergeTree sorts every inserted block that is not already in key order and copies
//! each column into the new order, on fresh memory. tokentrail's rows arrive in Kafka order,
//! so none of the raw tables' blocks were in order. Sent in key order, their INSERTs cost the
//! 18.16 server about 1.5 CPU-s less per million events, 0.885× its CPU in all
//! (benches/README.md, "Thirteenth session"). The order is only an optimisation: a row whose
//! key cannot be read, or a key that differs from the server's, costs the server its sort and
//! nothing else.
//!
//! The readers follow the encoders in `super` column by column; the tests below encode rows
//! and read their keys back, and check the key columns against each table's `ORDER BY`.

use super::Table;
use crate::store::rowbinary::RowReader;

/// How finely the server stores a millisecond column's `DateTime` twin (`created_at` from
/// `created_at_ms`): the key must compare what the server compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePrecision {
    /// `DateTime`: `toDateTime(intDiv(ms, 1000))`.
    Seconds,
    /// `DateTime64(3)`.
    Millis,
}

impl TimePrecision {
    fn of_ms(self, ms: i64) -> i64 {
        match self {
            // intDiv truncates toward zero, as `/` does.
            TimePrecision::Seconds => ms / 1000,
            TimePrecision::Millis => ms,
        }
    }
}

/// A row's key: up to a text, a number and a text, which `store::key_order` compares in that
/// order, the way the server compares `String` (bytes, then length) and `Int64` columns.
/// Unused parts are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey<'r> {
    pub head: &'r [u8],
    pub number: i64,
    pub tail: &'r [u8],
}

impl Table {
    /// The table's `ORDER BY` columns, when the writer sends its rows in that order.
    /// `token_use` and `alerts` are sent as they come: `token_use` feeds views sorted by
    /// other keys, and `alerts` holds a few rows per batch.
    pub fn sort_columns(self) -> Option<&'static [&'static str]> {
        match self {
            Table::AuditEvents => Some(&["event_type", "created_at", "dedup_key"]),
            Table::WebhookEvents => Some(&["object_kind", "dedup_key"]),
            Table::Jobs => Some(&["job_id"]),
            Table::AllowlistChanges => {
                Some(&["protected_project_path", "event_time_ms", "dedup_key"])
            }
            Table::TokenLifecycle => Some(&["scope_path", "event_time_ms", "dedup_key"]),
            Table::TokenUse | Table::Alerts => None,
        }
    }

    /// The [`Table::sort_columns`] of one encoded row; `None` for a table sent as it comes
    /// or a row that cannot be read.
    pub fn sort_key(self, row: &[u8], precision: TimePrecision) -> Option<SortKey<'_>> {
        let mut r = RowReader::new(row);
        match self {
            Table::AuditEvents => {
                let dedup_key = r.string()?;
                r.string()?; // id
                r.u8()?; // stream_only
                let event_type = r.string()?;
                r.i64()?; // author_id
                for _author_name_class_actor_kind in 0..3 {
                    r.string()?;
                }
                r.opt_i64()?; // entity_id
                r.string()?; // entity_type
                r.string()?; // entity_path
                r.opt_i64()?; // target_id
                for _target_type_details_ip_address in 0..3 {
                    r.string()?;
                }
                let created_at_ms = r.i64()?;
                Some(SortKey {
                    head: event_type,
                    number: precision.of_ms(created_at_ms),
                    tail: dedup_key,
                })
            }
            Table::WebhookEvents => {
                let dedup_key = r.string()?;
                r.string()?; // event_header
                let object_kind = r.string()?;
                Some(SortKey {
                    head: object_kind,
                    number: 0,
                    tail: dedup_key,
                })
            }
            Table::Jobs => Some(SortKey {
                head: b"",
                number: r.i64()?,
                tail: b"",
            }),
            Table::AllowlistChanges => {
                let dedup_key = r.string()?;
                let event_time_ms = r.i64()?;
                r.string()?; // change
                r.opt_i64()?; // protected_project_id
                let protected_project_path = r.string()?;
                Some(SortKey {
                    head: protected_project_path,
                    number: event_time_ms,
                    tail: dedup_key,
                })
            }
            Table::TokenLifecycle => {
                let dedup_key = r.string()?;
                let event_time_ms = r.i64()?;
                for _event_type_token_kind_operation in 0..3 {
                    r.string()?;
                }
                r.opt_i64()?; // token_id
                r.string()?; // scope_type
                r.opt_i64()?; // scope_id
                let scope_path = r.string()?;
                Some(SortKey {
                    head: scope_path,
                    number: event_time_ms,
                    tail: dedup_key,
                })
            }
            Table::TokenUse | Table::Alerts => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ActorKind, AllowlistChange, AllowlistChangeKind, AuditEvent, AuditMeaning, JobInfo,
        TokenLifecycle, WebhookEvent,
    };
    use crate::store::schema::MIGRATIONS;
    use crate::store::tables::{
        KafkaOrigin, encode_allowlist_change, encode_audit_event, encode_job,
        encode_token_lifecycle, encode_webhook_event,
    };

    const ORIGIN: KafkaOrigin<'static> = KafkaOrigin {
        topic: "audit",
        partition: 3,
        offset: 42,
    };

    /// Every field set, and different from the key's, so a reader that stops one column
    /// early or late reads the wrong value.
    fn audit_event() -> AuditEvent {
        AuditEvent {
            id: "id-1".into(),
            dedup_key: "dk-1".into(),
            stream_only: true,
            event_type: "job_artifact_downloaded".into(),
            author_id: 17,
            author_name: "Ann".into(),
            author_class: Some("User".into()),
            actor_kind: ActorKind::Human,
            entity_id: Some(5),
            entity_type: "Project".into(),
            entity_path: "g/p".into(),
            target_id: Some(9),
            target_type: "Ci::Build".into(),
            target_details: "d".into(),
            ip_address: "10.0.0.1".into(),
            created_at_ms: 1_700_000_001_999,
            details_json: "{}".into(),
            meaning: AuditMeaning::JobTokenAuth { job_id: Some(3) },
        }
    }

    fn encoded(encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf);
        buf
    }

    #[test]
    fn audit_keys_compare_created_at_as_the_server_stores_it() {
        let row = encoded(|b| encode_audit_event(&audit_event(), ORIGIN, 1, b));
        let key = |p| Table::AuditEvents.sort_key(&row, p).expect("a key");
        let seconds = key(TimePrecision::Seconds);
        assert_eq!(
            (seconds.head, seconds.number, seconds.tail),
            (&b"job_artifact_downloaded"[..], 1_700_000_001, &b"dk-1"[..])
        );
        assert_eq!(key(TimePrecision::Millis).number, 1_700_000_001_999);
        assert_eq!(TimePrecision::Seconds.of_ms(-1_500), -1, "intDiv truncates");
    }

    #[test]
    fn every_sorted_tables_key_is_read_from_its_encoders_columns() {
        let webhook = WebhookEvent {
            dedup_key: "wk".into(),
            event_header: "Job Hook".into(),
            object_kind: "build".into(),
            project_id: Some(5),
            project_path: "g/p".into(),
            event_time_ms: 7,
            payload_json: "{}".into(),
            jobs: Vec::new(),
        };
        let row = encoded(|b| encode_webhook_event(&webhook, ORIGIN, 1, b));
        let key = Table::WebhookEvents.sort_key(&row, TimePrecision::Seconds);
        assert_eq!(
            key.map(|k| (k.head, k.tail)),
            Some((&b"build"[..], &b"wk"[..]))
        );

        let job = JobInfo {
            job_id: 991,
            project_id: Some(5),
            pipeline_id: Some(6),
            ..JobInfo::default()
        };
        let row = encoded(|b| encode_job(&job, 12, b));
        let key = Table::Jobs.sort_key(&row, TimePrecision::Seconds);
        assert_eq!(key.map(|k| k.number), Some(991));

        let ev = audit_event();
        let change = AllowlistChange {
            change: AllowlistChangeKind::ProjectAdded,
            protected_project_id: Some(5),
            protected_project_path: "g/protected".into(),
            member_type: Some("project".into()),
            member_id: Some(6),
            member_path: Some("g/member".into()),
            default_permissions: Some(true),
            policies: vec!["a".into()],
        };
        let row = encoded(|b| encode_allowlist_change(&ev, &change, b));
        let key = Table::AllowlistChanges.sort_key(&row, TimePrecision::Seconds);
        assert_eq!(
            key.map(|k| (k.head, k.number, k.tail)),
            Some((&b"g/protected"[..], 1_700_000_001_999, &b"dk-1"[..])),
            "event_time_ms is an Int64 key column, never truncated"
        );

        let lifecycle = TokenLifecycle {
            token_kind: "deploy_token".into(),
            operation: "created".into(),
            token_id: Some(4),
            scope_type: "Project".into(),
            scope_id: Some(5),
            scope_path: "g/scope".into(),
        };
        let row = encoded(|b| encode_token_lifecycle(&ev, &lifecycle, b));
        let key = Table::TokenLifecycle.sort_key(&row, TimePrecision::Seconds);
        assert_eq!(
            key.map(|k| (k.head, k.number, k.tail)),
            Some((&b"g/scope"[..], 1_700_000_001_999, &b"dk-1"[..]))
        );
    }

    #[test]
    fn a_cut_row_has_no_key() {
        let row = encoded(|b| encode_audit_event(&audit_event(), ORIGIN, 1, b));
        for len in [0, 3, 40, 90] {
            assert_eq!(
                Table::AuditEvents.sort_key(&row[..len], TimePrecision::Millis),
                None,
                "{len} bytes"
            );
        }
        assert_eq!(Table::TokenUse.sort_key(&row, TimePrecision::Millis), None);
    }

    /// The `ORDER BY` of the table's `CREATE TABLE` in `schemas/clickhouse/`.
    fn order_by(table: Table) -> String {
        let create = format!("CREATE TABLE IF NOT EXISTS {{{{db}}}}.{}\n", table.name());
        let (_, _, sql) = MIGRATIONS
            .iter()
            .rfind(|(_, _, sql)| sql.contains(&create))
            .expect("the table's migration");
        let after = &sql[sql.find(&create).unwrap()..];
        let line = after
            .lines()
            .find_map(|l| l.strip_prefix("ORDER BY "))
            .expect("an ORDER BY");
        line.trim().to_string()
    }

    #[test]
    fn sort_columns_are_the_tables_order_by() {
        for table in Table::ALL {
            if let Some(columns) = table.sort_columns() {
                let expected = match columns {
                    [one] => one.to_string(),
                    many => format!("({})", many.join(", ")),
                };
                assert_eq!(order_by(table), expected, "{}", table.name());
            }
        }
    }
}
