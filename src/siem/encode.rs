//! Picks the format and turns a record into the bytes a sink sends.

use serde::{Deserialize, Serialize};

use super::record::{RecordKind, Severity, SiemRecord};
use super::{cef, ecs, ocsf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// OCSF 1.x JSON (API Activity, Entity Management, Detection Finding).
    Ocsf,
    /// Elastic Common Schema JSON.
    Ecs,
    /// ArcSight CEF lines.
    Cef,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
            Format::Cef => "cef",
        }
    }

    /// Whether the payload is a JSON document (else a text line).
    pub fn is_json(self) -> bool {
        !matches!(self, Format::Cef)
    }
}

/// One record rendered in one format, with what the sinks need to route it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub kind: RecordKind,
    /// The record's stable id (Kafka key, for SIEM-side deduplication).
    pub id: String,
    pub time_ms: i64,
    pub severity: Severity,
    pub format: Format,
    /// Compact JSON for OCSF and ECS, the CEF line for CEF; never contains a raw newline.
    pub payload: String,
}

pub fn encode(format: Format, record: &SiemRecord) -> Encoded {
    let payload = match format {
        Format::Ocsf => ocsf::to_ocsf(record).to_string(),
        Format::Ecs => ecs::to_ecs(record).to_string(),
        Format::Cef => cef::to_cef(record),
    };
    Encoded {
        kind: record.kind(),
        id: record.id(),
        time_ms: record.time_ms(),
        severity: record.severity(),
        format,
        payload,
    }
}
