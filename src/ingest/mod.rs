//! `tokentrail ingest`: Kafka → normalize → batch → ClickHouse → commit.

pub mod batch;
pub mod dead_letter;
pub mod offsets;
pub mod pipeline;
pub mod route;
pub mod source;
