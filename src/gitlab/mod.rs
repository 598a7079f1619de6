//! `tokentrail gitlab …`: what GitLab's API knows and the audit stream may not have
//! delivered (docs/gitlab-sync.md).
//!
//! - `settings.rs`: `[gitlab]` (URL, token as a secret, timeouts, page limits, retries).
//! - `client.rs`: the HTTP client (rate limits, retries with `retry::Backoff`, size limits,
//!   token never printed); `pagination.rs`: which page is next, and when to refuse.
//! - `api.rs`: the calls, with answers checked field by field.
//! - `snapshot.rs` (pure): allowlists → snapshot audit events, drift against the history
//!   read by `history.rs`; `sync.rs` runs it; `produce.rs` writes to the audit topic.
//! - `coverage.rs`: GitLab's authentication log against `token_use` (coverage gaps).
//! - `backfill.rs`: saved audit events of a time range, re-read into the audit topic.
//! - `progress.rs`: progress on stderr. The subcommands are `cli::gitlab`.
//!
//! A stage: it uses `kafka`, `store`, `retry` and `telemetry` below it, nothing uses it.

pub mod api;
pub mod backfill;
pub mod client;
pub mod coverage;
pub mod history;
pub mod pagination;
pub mod produce;
pub mod progress;
pub mod settings;
pub mod snapshot;
pub mod sync;
