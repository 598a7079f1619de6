//! `tokentrail ingest`: Kafka → normalize → batch → ClickHouse → commit.

pub mod alert_dispatch;
pub mod allowlist_history;
pub mod batch;
pub mod bot_history;
pub mod correlation;
pub mod pipeline;
pub mod process;
pub mod route;
