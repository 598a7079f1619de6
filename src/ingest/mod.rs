//! `tokentrail ingest`: Kafka → normalize → correlate → alert → batch → ClickHouse → commit.
//!
//! `app` builds and runs it; `pipeline` is the loop that reads as the whole flow; `process`
//! is the pure per-message work, `batcher` the flush policy, `writer` the store step and
//! `commit` the last step. `seal_timer` runs beside the loop, outside the commit barrier:
//! it seals ended days of token_use for the named queries.

pub mod alert_dispatch;
pub mod allowlist_history;
pub mod app;
pub mod batch;
pub mod batcher;
pub mod bot_history;
pub mod caught_up;
pub mod clocks;
pub mod commit;
pub mod correlation;
pub mod error;
pub mod pipeline;
pub mod process;
pub mod route;
pub mod seal_timer;
pub mod topics;
pub mod writer;

#[cfg(test)]
mod pipeline_tests;
