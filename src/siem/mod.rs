//! The SIEM feed: token-use records, token lifecycle events and alerts, rendered as OCSF,
//! Elastic ECS or ArcSight CEF, and delivered at-least-once to Kafka, syslog or Splunk HEC.
//!
//! * [`record`] — the input records (rows read back from ClickHouse).
//! * [`ocsf`], [`ecs`], [`cef`] — pure mappings, one file per format; [`encode`] picks one.
//! * [`syslog`] — pure RFC 5424 formatting and RFC 6587 octet-counting framing.
//! * [`sink`] and `sink_*` — delivery with retry and capped backoff.
//! * [`source`], [`state`], [`export`] — `tokentrail export`: follow ClickHouse or backfill.
//!
//! See docs/siem.md for the mapping tables and the reasons behind them.

pub mod cef;
pub mod config;
pub mod delivery;
pub mod ecs;
pub mod encode;
pub mod export;
pub mod ocsf;
pub mod record;
pub mod retry;
pub mod sink;
pub mod sink_hec;
pub mod sink_kafka;
pub mod sink_syslog;
pub mod source;
pub mod state;
pub mod syslog;

/// `metadata.product.name` (OCSF), `observer.product` (ECS), Device Product (CEF).
pub const PRODUCT: &str = "tokentrail";
/// `metadata.product.vendor_name` (OCSF), `observer.vendor` (ECS), Device Vendor (CEF).
pub const VENDOR: &str = "tokentrail";
/// The product version every format reports.
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");
