//! Kafka infrastructure below the stages: client configuration and error classification
//! (`client`), the producer every writer uses (`producer`), the ingest consumer and its rebalance context (`consumer`), the offset
//! bookkeeping that makes the commit barrier (`offsets`), and the dead-letter writer
//! (`dead_letter`). Nothing here imports a stage.

pub mod client;
pub mod connect_check;
pub mod consumer;
pub mod dead_letter;
pub mod offsets;
pub mod producer;
pub mod settings;
