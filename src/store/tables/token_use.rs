//! The `token_use` table, declared once: its inserted columns, the encoder that fills them,
//! and the select list and row type it is read back through (by the SIEM feed).

use serde::de::SeqAccess;
use serde::{Deserialize, Deserializer};

use super::read_row::{Columns, ReadRow, read_row};
use crate::model::{ActorKind, TokenUse};
use crate::store::rowbinary::RowWriter;

/// The inserted columns, in RowBinary order: [`TokenUse`]'s fields between the record's
/// storage identity (`record_key`) and its insert time.
pub const COLUMNS: &[&str] = &[
    "record_key",
    "event_time_ms",
    "actor_id",
    "actor_name",
    "actor_username",
    "actor_kind",
    "source_project_id",
    "source_project_path",
    "target_project_id",
    "target_project_path",
    "action",
    "job_id",
    "pipeline_id",
    "git_ref",
    "runner_id",
    "token_type",
    "ip_address",
    "same_project",
    "allowlisted",
    "correlation",
    "gap_ms",
    "ingested_at_ms",
];

/// [`COLUMNS`] as read into [`StoredTokenUse`]. The low-cardinality text columns are cast,
/// which pins the type read whatever the DDL dialect spells.
pub const SELECT: &str = "record_key, event_time_ms, actor_id, actor_name, \
    actor_username, toString(actor_kind), source_project_id, source_project_path, \
    target_project_id, target_project_path, toString(action), job_id, pipeline_id, git_ref, \
    runner_id, toString(token_type), ip_address, same_project, allowlisted, \
    toString(correlation), gap_ms, ingested_at_ms";

/// `record_key` identifies the record across replays (see `correlate`), so a replayed
/// correlation replaces rather than duplicates it.
pub fn encode(rec: &TokenUse, record_key: &str, ingested_at_ms: i64, buf: &mut Vec<u8>) {
    RowWriter::new(buf)
        .string(record_key)
        .i64(rec.event_time_ms)
        .i64(rec.actor_id)
        .string(&rec.actor_name)
        .opt_string(rec.actor_username.as_deref())
        .string(rec.actor_kind.as_str())
        .opt_i64(rec.source_project_id)
        .string(&rec.source_project_path)
        .opt_i64(rec.target_project_id)
        .string(&rec.target_project_path)
        .string(rec.action.as_str())
        .opt_i64(rec.job_id)
        .opt_i64(rec.pipeline_id)
        .opt_string(rec.git_ref.as_deref())
        .opt_i64(rec.runner_id)
        .string(&rec.token_type)
        .string(&rec.ip_address)
        .bool(rec.same_project)
        .opt_bool(rec.allowlisted)
        .string(rec.correlation.as_str())
        .i64(rec.gap_ms)
        .i64(ingested_at_ms);
}

/// One stored token-use row, as [`SELECT`] reads it: the correlator's [`TokenUse`] plus its
/// storage identity.
#[derive(clickhouse::Row, Debug, Clone, PartialEq)]
pub struct StoredTokenUse {
    /// Stable across replays: the SIEM's event id.
    pub record_key: String,
    pub ingested_at_ms: i64,
    pub token_use: TokenUse,
}

impl ReadRow for StoredTokenUse {
    const COLUMNS: &'static [&'static str] = COLUMNS;

    /// An actor kind the code does not know reads as `Unknown`, and any non-zero flag as
    /// true: a stored row is never dropped. A correlation no release writes fails the read.
    fn read<'de, A: SeqAccess<'de>>(c: &mut Columns<'de, A>) -> Result<Self, A::Error> {
        let record_key = c.column()?;
        let token_use = TokenUse {
            event_time_ms: c.column()?,
            actor_id: c.column()?,
            actor_name: c.column()?,
            actor_username: c.column()?,
            actor_kind: ActorKind::parse(&c.column::<String>()?),
            source_project_id: c.column()?,
            source_project_path: c.column()?,
            target_project_id: c.column()?,
            target_project_path: c.column()?,
            action: c.column()?,
            job_id: c.column()?,
            pipeline_id: c.column()?,
            git_ref: c.column()?,
            runner_id: c.column()?,
            token_type: c.column()?,
            ip_address: c.column()?,
            same_project: c.column::<u8>()? != 0,
            allowlisted: c.column::<Option<u8>>()?.map(|a| a != 0),
            correlation: c.column()?,
            gap_ms: c.column()?,
        };
        Ok(StoredTokenUse {
            record_key,
            ingested_at_ms: c.column()?,
            token_use,
        })
    }
}

impl<'de> Deserialize<'de> for StoredTokenUse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_row(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Correlation};
    use crate::store::tables::read_row::{read_back, select_columns};

    #[test]
    fn the_select_list_reads_the_inserted_columns_in_order() {
        assert_eq!(select_columns(SELECT), COLUMNS);
    }

    fn use_(i: i64) -> TokenUse {
        TokenUse {
            event_time_ms: 1_735_787_045_123 + i,
            actor_id: 4021,
            actor_name: "Zoë | ops=lead\r\n".into(),
            actor_username: (i == 0).then(|| "zoe".into()),
            actor_kind: ActorKind::ProjectBot,
            source_project_id: Some(101),
            source_project_path: "platform/deployer".into(),
            target_project_id: (i == 0).then_some(202),
            target_project_path: "platform/shared-libs".into(),
            action: Action::known("repository.read"),
            job_id: Some(777_001),
            pipeline_id: None,
            git_ref: Some("main".into()),
            runner_id: None,
            token_type: "ci_job_token".into(),
            ip_address: "10.20.30.40".into(),
            same_project: i == 1,
            allowlisted: [Some(true), Some(false), None][i as usize % 3],
            correlation: [
                Correlation::Matched,
                Correlation::AuthOnly,
                Correlation::Lineage,
            ][i as usize % 3],
            gap_ms: 37,
        }
    }

    #[tokio::test]
    async fn rows_read_back_as_they_were_encoded() {
        let mut bytes = Vec::new();
        let want: Vec<StoredTokenUse> = (0..3)
            .map(|i| {
                let stored = StoredTokenUse {
                    record_key: format!("tu:{i}"),
                    ingested_at_ms: 1_735_787_046_000 + i,
                    token_use: use_(i),
                };
                encode(
                    &stored.token_use,
                    &stored.record_key,
                    stored.ingested_at_ms,
                    &mut bytes,
                );
                stored
            })
            .collect();
        assert_eq!(read_back::<StoredTokenUse>(bytes).await, want);
    }
}
