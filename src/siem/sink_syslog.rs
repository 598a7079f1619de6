//! Syslog sink: RFC 5424 messages, RFC 6587 octet-counting framing, over TCP or TLS
//! (rustls with the ring provider; no OpenSSL).
//!
//! A batch is written as one buffer and flushed. Plain syslog over TCP has no application
//! acknowledgement, so "delivered" means "accepted by the kernel on a live connection":
//! before each batch the connection is probed for EOF (receivers never send data, so a
//! readable EOF means the peer closed it), and on any write error the whole batch is
//! re-sent on a fresh connection. Duplicates are possible, silent loss only if the receiver
//! dies after the kernel accepted the bytes (use RELP or HEC when that matters).

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;

use super::config::{RetryPolicy, SiemSettings, SyslogSettings};
use super::delivery::{AttemptError, SinkError, after_failure, local_hostname};
use super::encode::Encoded;
use super::retry::Backoff;
use super::syslog::{SyslogHeader, format_message, frame};
use crate::telemetry::metrics::Metrics;

const SINK: &str = "syslog";

enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(s) => s,
            Connection::Tls(s) => s.get_ref().0,
        }
    }

    /// False when the receiver has closed the connection (or it errored).
    fn looks_alive(&self) -> bool {
        let mut buf = [0u8; 1];
        match self.tcp().peek(&mut buf).now_or_never() {
            None => true,         // nothing to read: the normal state
            Some(Ok(0)) => false, // EOF
            Some(Ok(_)) => true,  // e.g. TLS 1.3 session tickets
            Some(Err(_)) => false,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Connection::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Connection::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

pub struct SyslogSink {
    settings: SyslogSettings,
    header: SyslogHeader,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connection: Option<Connection>,
    retry: RetryPolicy,
    metrics: Metrics,
    cancel: CancellationToken,
}

fn setup(message: impl Into<String>) -> SinkError {
    SinkError::Setup {
        sink: SINK,
        message: message.into(),
    }
}

fn read_pem(path: &str) -> Result<BufReader<std::fs::File>, SinkError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|e| setup(format!("{path}: {e}")))
}

/// The rustls client configuration from `siem.syslog.{ca_file, client_cert_file, ...}`.
pub fn tls_config(s: &SyslogSettings) -> Result<ClientConfig, SinkError> {
    let mut roots = RootCertStore::empty();
    if s.ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for cert in rustls_pemfile::certs(&mut read_pem(&s.ca_file)?) {
            let cert = cert.map_err(|e| setup(format!("siem.syslog.ca_file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| setup(format!("siem.syslog.ca_file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(roots);
    if s.client_cert_file.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read_pem(&s.client_cert_file)?)
            .collect::<Result<_, _>>()
            .map_err(|e| setup(format!("siem.syslog.client_cert_file: {e}")))?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut read_pem(&s.client_key_file)?)
            .map_err(|e| setup(format!("siem.syslog.client_key_file: {e}")))?
            .ok_or_else(|| setup("siem.syslog.client_key_file: no private key found"))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| setup(format!("siem.syslog.client_cert_file: {e}")))
}

impl SyslogSink {
    pub fn new(
        siem: &SiemSettings,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Self, SinkError> {
        let s = siem.syslog.clone();
        let tls = if s.tls {
            let name = if s.server_name.is_empty() {
                s.address
                    .rsplit_once(':')
                    .map(|(host, _)| host.trim_matches(['[', ']']))
                    .unwrap_or(&s.address)
                    .to_owned()
            } else {
                s.server_name.clone()
            };
            let name = ServerName::try_from(name)
                .map_err(|e| setup(format!("siem.syslog.server_name: {e}")))?;
            Some((TlsConnector::from(Arc::new(tls_config(&s)?)), name))
        } else {
            None
        };
        let header = SyslogHeader {
            facility: s.facility,
            hostname: if s.hostname.is_empty() {
                local_hostname()
            } else {
                s.hostname.clone()
            },
            app_name: s.app_name.clone(),
            proc_id: std::process::id().to_string(),
        };
        Ok(SyslogSink {
            settings: s,
            header,
            tls,
            connection: None,
            retry: siem.retry.clone(),
            metrics,
            cancel,
        })
    }

    async fn connect(&self) -> Result<Connection, AttemptError> {
        let retry = |message: String| AttemptError::Retry {
            message,
            retry_after: None,
        };
        let timeout = Duration::from_millis(self.settings.connect_timeout_ms);
        let address = &self.settings.address;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| retry(format!("connecting to {address}: timed out")))?
            .map_err(|e| retry(format!("connecting to {address}: {e}")))?;
        tcp.set_nodelay(true).ok();
        let Some((connector, name)) = &self.tls else {
            return Ok(Connection::Plain(tcp));
        };
        let tls = tokio::time::timeout(timeout, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| retry(format!("TLS handshake with {address}: timed out")))?
            .map_err(|e| retry(format!("TLS handshake with {address}: {e}")))?;
        Ok(Connection::Tls(Box::new(tls)))
    }

    async fn attempt(&mut self, bytes: &[u8]) -> Result<(), AttemptError> {
        if !self
            .connection
            .as_ref()
            .is_some_and(Connection::looks_alive)
        {
            self.connection = Some(self.connect().await?);
        }
        let conn = self.connection.as_mut().expect("connected above");
        if let Err(e) = conn.write_all(bytes).await {
            self.connection = None;
            return Err(AttemptError::Retry {
                message: format!("writing to {}: {e}", self.settings.address),
                retry_after: None,
            });
        }
        Ok(())
    }

    pub async fn deliver(&mut self, batch: &[Encoded]) -> Result<(), SinkError> {
        let mut bytes = Vec::new();
        for m in batch {
            bytes.extend(frame(&format_message(&self.header, m)));
        }
        let mut backoff = Backoff::new(&self.retry);
        loop {
            match self.attempt(&bytes).await {
                Ok(()) => {
                    self.metrics
                        .siem_delivered
                        .with_label_values(&[SINK])
                        .inc_by(batch.len() as u64);
                    return Ok(());
                }
                Err(e) => after_failure(SINK, &mut backoff, &self.metrics, &self.cancel, e).await?,
            }
        }
    }
}
