//! Errors of SELECTs: hydration, the allowlist and bot histories, `alerts`, `gitlab`, the
//! migrations' bookkeeping. A read has no rows to blame, so where an INSERT's error
//! ([`WriteError`]) can say "the data was rejected, bisect it", a read's can only say "try
//! again later" or "this cannot work" (a missing table, a privilege, a type the query did not
//! expect).

use clickhouse::Client;

use super::schema::ServerVersion;
use super::sink::{WriteError, classify, code_suffix};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The server or the network is struggling; the same SELECT can succeed later.
    #[error("ClickHouse unavailable{}: {message}", code_suffix(*.code))]
    Retryable { code: Option<u32>, message: String },
    /// Waiting cannot help: fix the schema (`tokentrail migrate`), the user or the query.
    #[error("ClickHouse query failed{}: {message}", code_suffix(*.code))]
    Fatal { code: Option<u32>, message: String },
}

impl ReadError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReadError::Retryable { .. })
    }
}

/// The error codes and their meaning are the write path's (`sink::classify`); what an INSERT
/// would bisect as rejected data is, for a SELECT, a query that cannot work.
pub fn classify_read(err: &clickhouse::error::Error) -> ReadError {
    match classify(err) {
        WriteError::Retryable { code, message } => ReadError::Retryable { code, message },
        WriteError::Rejected { code, message } => ReadError::Fatal {
            code: Some(code),
            message,
        },
        WriteError::Fatal { code, message } => ReadError::Fatal { code, message },
    }
}

/// `SELECT version()` of the server behind `client`.
pub async fn server_version(client: &Client) -> Result<ServerVersion, ReadError> {
    let text: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(|e| classify_read(&e))?;
    ServerVersion::parse(&text).ok_or_else(|| ReadError::Fatal {
        code: None,
        message: format!("cannot parse server version {text:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_select_is_never_rejected_data() {
        // 53 TYPE_MISMATCH blames the rows of an INSERT; a SELECT that hits it cannot work.
        let e =
            clickhouse::error::Error::BadResponse("Code: 53. DB::Exception: Type mismatch".into());
        assert!(matches!(
            classify(&e),
            WriteError::Rejected { code: 53, .. }
        ));
        assert!(matches!(
            classify_read(&e),
            ReadError::Fatal { code: Some(53), .. }
        ));
        let busy = clickhouse::error::Error::BadResponse(
            "Code: 202. DB::Exception: Too many simultaneous queries".into(),
        );
        assert!(classify_read(&busy).is_retryable());
        let denied = clickhouse::error::Error::BadResponse(
            "Code: 497. DB::Exception: Not enough privileges".into(),
        );
        let ReadError::Fatal { message, .. } = classify_read(&denied) else {
            panic!()
        };
        assert!(message.contains("lacks a privilege"), "{message}");
    }
}
