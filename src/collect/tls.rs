//! Optional HTTPS: rustls with the pure-Rust `ring` provider, so no OpenSSL is needed.
//!
//! Each handshake runs in its connection's own task (server.rs), within [`HANDSHAKE_TIMEOUT`]:
//! one slow or hostile client cannot hold up accepting others.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// A client has this long to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("collect.tls_cert_path {path}: {source}")]
    Certificate {
        path: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("collect.tls_cert_path {path}: no certificate in the file")]
    NoCertificate { path: String },
    #[error("collect.tls_key_path {path}: {source}")]
    Key {
        path: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("collect.tls_key_path: the key does not fit the certificate: {0}")]
    Config(#[from] rustls::Error),
}

pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_name = cert_path.display().to_string();
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: cert_name.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_name });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Key {
        path: key_path.display().to_string(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
