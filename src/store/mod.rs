//! Everything that touches ClickHouse: row encoding, the schema, and the batch writer.

pub mod block;
pub mod chunk_pool;
pub mod chunks;
pub mod client;
pub mod cluster;
pub mod key_order;
pub mod migrate;
pub mod read;
pub mod rowbinary;
pub mod schema;
pub mod seal;
pub mod settings;
pub mod sink;
#[cfg(test)]
mod sink_tests;
pub mod tables;
