//! RFC 5424 syslog messages with RFC 6587 octet-counting framing (pure).
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, where MSGID is the record kind
//! (`token_use`, `token_lifecycle`, `alert`) and MSG is the CEF line or the JSON document.
//! No structured data (`-`): everything is in MSG, which SIEM parsers read anyway. MSG is
//! sent as MSG-ANY (no BOM): several receivers keep a BOM as part of the text, which would
//! break JSON and CEF parsers, and RFC 5424 allows MSG-ANY.
//! Octet counting (`MSG-LEN SP SYSLOG-MSG`) rather than LF framing, so a message may contain
//! any byte.

use super::encode::Encoded;
use super::record::{Severity, rfc3339_ms};

/// The header fields that do not change per message.
#[derive(Debug, Clone)]
pub struct SyslogHeader {
    /// 0..=23; 10 = authpriv (security/authorization messages), 13 = log audit.
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub proc_id: String,
}

/// RFC 5424 severity (0 emergency .. 7 debug).
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Informational | Severity::Unknown => 6,
    }
}

/// A header field: printable US-ASCII without spaces, at most `max` characters, or `-`.
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// The SYSLOG-MSG (RFC 5424 §6) for one encoded record.
pub fn format_message(header: &SyslogHeader, msg: &Encoded) -> String {
    let pri = u32::from(header.facility) * 8 + u32::from(syslog_severity(msg.severity));
    format!(
        "<{pri}>1 {} {} {} {} {} - {}",
        rfc3339_ms(msg.time_ms),
        header_field(&header.hostname, 255),
        header_field(&header.app_name, 48),
        header_field(&header.proc_id, 128),
        header_field(msg.kind.as_str(), 32),
        msg.payload
    )
}

/// RFC 6587 §3.4.1 octet-counting frame: the byte length, a space, the message.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::siem::encode::Format;
    use crate::siem::record::RecordKind;

    #[test]
    fn message_and_frame() {
        let header = SyslogHeader {
            facility: 10,
            hostname: "host a".into(),
            app_name: "tokentrail".into(),
            proc_id: "42".into(),
        };
        let enc = Encoded {
            kind: RecordKind::Alert,
            id: "x".into(),
            time_ms: 1_700_000_000_123,
            severity: Severity::High,
            format: Format::Cef,
            payload: "CEF:0|é".into(),
        };
        let m = format_message(&header, &enc);
        assert_eq!(
            m,
            "<83>1 2023-11-14T22:13:20.123Z hosta tokentrail 42 alert - CEF:0|é"
        );
        // The length counts bytes, not characters.
        assert_eq!(frame("é"), b"2 \xc3\xa9".to_vec());
    }
}
