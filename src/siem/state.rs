//! The follow mode's persisted position: per table, the watermark and the rows already sent
//! inside the look-back window. Written atomically (temp file + rename) after every
//! delivered batch, so a restart resumes where the last acknowledged batch ended; a crash
//! between delivery and save re-sends that batch (at-least-once).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::RecordKind;
use super::source::Cursor;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("siem.state_file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("siem.state_file {path}: not a tokentrail export state: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportState {
    pub tables: BTreeMap<RecordKind, TableState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableState {
    /// The largest follow-column value delivered so far (milliseconds).
    pub watermark_ms: i64,
    /// `(follow-column value, key)` of rows delivered within the look-back window.
    pub sent: BTreeSet<(i64, String)>,
}

impl TableState {
    pub fn was_sent(&self, c: &Cursor) -> bool {
        self.sent.contains(&(c.order_ms, c.key.clone()))
    }

    pub fn mark_sent(&mut self, c: &Cursor) {
        self.watermark_ms = self.watermark_ms.max(c.order_ms);
        self.sent.insert((c.order_ms, c.key.clone()));
    }

    /// Forgets rows that fell out of the look-back window: they will not be re-read.
    pub fn prune(&mut self, lookback_ms: i64) {
        let horizon = self.watermark_ms.saturating_sub(lookback_ms);
        self.sent = self.sent.split_off(&(horizon, String::new()));
    }

    /// Where a follow poll starts reading.
    pub fn scan_start(&self, lookback_ms: i64) -> Cursor {
        Cursor {
            order_ms: self.watermark_ms.saturating_sub(lookback_ms),
            key: String::new(),
        }
    }
}

impl ExportState {
    /// The saved state, or an empty one (export from the beginning) if the file is missing.
    pub fn load(path: &Path) -> Result<ExportState, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ExportState::default());
            }
            Err(source) => {
                return Err(StateError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|source| StateError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec(self).expect("state serializes");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn table(&mut self, kind: RecordKind) -> &mut TableState {
        self.tables.entry(kind).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_lookback_window_and_the_state_round_trips() {
        let mut t = TableState::default();
        for (ms, k) in [(100, "a"), (150, "b"), (200, "c")] {
            t.mark_sent(&Cursor {
                order_ms: ms,
                key: k.into(),
            });
        }
        t.prune(60);
        assert_eq!(t.watermark_ms, 200);
        assert_eq!(
            t.sent.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
            vec![150, 200]
        );
        assert_eq!(t.scan_start(60).order_ms, 140);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut s = ExportState::default();
        *s.table(RecordKind::TokenUse) = t;
        s.save(&path).unwrap();
        assert_eq!(ExportState::load(&path).unwrap(), s);
        assert_eq!(
            ExportState::load(&dir.path().join("missing")).unwrap(),
            ExportState::default()
        );
    }
}
