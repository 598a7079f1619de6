//! The subcommands that read the whole configuration (`tokentrail alerts`, `export`, `gitlab`,
//! `query`, `report`, `simulate`): their arguments, and the entry points `src/main.rs` calls
//! with the loaded [`crate::config::Settings`].
//!
//! They sit above the stages they drive: `config` assembles the stages' own sections
//! (`alert::settings`, `siem::config`, ...), so a stage that took the whole `Settings` would
//! import the module that imports it.

pub mod alerts;
pub mod export;
pub mod gitlab;
pub mod query;
pub mod report;
pub mod simulate;
