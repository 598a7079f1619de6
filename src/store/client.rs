//! The one place a `clickhouse::Client` is built: our own hyper client, so an `https://` URL
//! gets rustls (ring) with the system's roots or `clickhouse.tls.ca_file`, and a client
//! certificate when `clickhouse.tls.cert_file` is set. An `http://` URL stays plain; an
//! `https://` one never falls back to plaintext: a failed handshake fails the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use clickhouse::Client;
use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::settings::{ClickHouseSettings, ClickHouseTlsSettings};
use crate::config_core::url_without_userinfo;

/// Idle connections are dropped before the server's `keep_alive_timeout` (3 s in
/// deploy/local/lib/clickhouse.sh) closes them. The same values as the crate's own client.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `clickhouse::Client` configured from settings. Validation is off: the crate's schema
/// check uses DESCRIBE/RowBinaryWithNamesAndTypes, which ClickHouse 18.16 lacks.
///
/// Never fails: the TLS files were checked when the settings were loaded
/// ([`tls_config`] runs there too); should one have changed since, every request fails with
/// the reason instead.
pub fn client(settings: &ClickHouseSettings) -> Client {
    let endpoint = url_without_userinfo(&settings.url);
    let connector = match tls_config(&settings.tls) {
        Ok(tls) => Connector::new(tls, endpoint, None),
        Err(reason) => {
            let empty = rustls_config(RootCertStore::empty(), None).expect("no client cert");
            Connector::new(empty, endpoint, Some(reason.to_string()))
        }
    };
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector);
    let mut client = Client::with_http_client(http)
        .with_url(&settings.url)
        .with_user(&settings.user)
        .with_database(&settings.database)
        .with_validation(false)
        .with_compression(clickhouse::Compression::None);
    if !settings.password.is_empty() {
        client = client.with_password(settings.password.expose());
    }
    client
}

/// Why `[clickhouse.tls]` cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsSetupError {
    pub key: &'static str,
    pub reason: String,
}

fn setup_error(key: &'static str, reason: impl Into<String>) -> TlsSetupError {
    TlsSetupError {
        key,
        reason: reason.into(),
    }
}

/// The rustls configuration for `[clickhouse.tls]`.
pub fn tls_config(tls: &ClickHouseTlsSettings) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    if tls.ca_file.is_empty() {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if roots.is_empty() {
            // No system store (a minimal container): Mozilla's roots, as the SIEM sinks use.
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    } else {
        let certs = certs("clickhouse.tls.ca_file", &tls.ca_file)?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(setup_error(
                "clickhouse.tls.ca_file",
                format!("no usable CA certificate in {:?}", tls.ca_file),
            ));
        }
    }
    let identity = if tls.cert_file.is_empty() {
        None
    } else {
        let chain = certs("clickhouse.tls.cert_file", &tls.cert_file)?;
        let key = private_key("clickhouse.tls.key_file", &tls.key_file)?;
        Some((chain, key))
    };
    rustls_config(roots, identity)
}

fn rustls_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_error("clickhouse.tls", e.to_string()))?
        .with_root_certificates(roots);
    // No ALPN here: hyper-rustls sets it (`enable_http1`).
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            setup_error(
                "clickhouse.tls.key_file",
                format!("does not fit cert_file: {e}"),
            )
        }),
    }
}

fn certs(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem =
        std::fs::read(path).map_err(|e| setup_error(key, format!("cannot read {path:?}: {e}")))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| setup_error(key, format!("{path:?} is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(setup_error(key, format!("no certificate in {path:?}")));
    }
    Ok(certs)
}

fn private_key(key: &'static str, path: &str) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let pem =
        std::fs::read(path).map_err(|e| setup_error(key, format!("cannot read {path:?}: {e}")))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| setup_error(key, format!("{path:?} is not PEM: {e}")))?
        .ok_or_else(|| setup_error(key, format!("no private key in {path:?}")))
}

/// hyper-rustls's connector, with errors that name the endpoint and say what failed.
#[derive(Clone)]
struct Connector {
    inner: HttpsConnector<HttpConnector>,
    endpoint: Arc<str>,
    broken: Option<Arc<str>>,
}

impl Connector {
    fn new(tls: rustls::ClientConfig, endpoint: String, broken: Option<String>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let inner = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Connector {
            inner,
            endpoint: endpoint.into(),
            broken: broken.map(Into::into),
        }
    }
}

/// A connection failure that retrying cannot fix: the certificate or the TLS setup.
#[derive(Debug, thiserror::Error)]
#[error("ClickHouse {endpoint}: {reason}")]
pub struct TlsFailure {
    endpoint: Arc<str>,
    reason: String,
}

/// Any other connection failure (refused, timed out, name not found): worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("ClickHouse {endpoint}: cannot connect: {reason}")]
pub struct ConnectFailure {
    endpoint: Arc<str>,
    reason: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = Named<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let endpoint = self.endpoint.clone();
        if let Some(reason) = &self.broken {
            let err = TlsFailure {
                endpoint,
                reason: reason.to_string(),
            };
            return Box::pin(async move { Err(err.into()) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match connecting.await {
                Ok(stream) => Ok(Named {
                    inner: stream,
                    endpoint,
                }),
                Err(e) => {
                    let reason = chain(e.as_ref());
                    Err(if is_tls(e.as_ref()) {
                        TlsFailure { endpoint, reason }.into()
                    } else {
                        ConnectFailure { endpoint, reason }.into()
                    })
                }
            }
        })
    }
}

/// A connection whose I/O errors name the endpoint: a reset after connecting (plaintext to a
/// TLS port, a proxy) says where it happened.
pub struct Named<S> {
    inner: S,
    endpoint: Arc<str>,
}

impl<S> Named<S> {
    fn name(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("ClickHouse {}: {e}", self.endpoint))
    }
}

impl<S: hyper::rt::Read + Unpin> hyper::rt::Read for Named<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        polled.map_err(|e| this.name(e))
    }
}

impl<S: hyper::rt::Write + Unpin> hyper::rt::Write for Named<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        polled.map_err(|e| this.name(e))
    }

    /// Passed through: hyper writes a body's chunks with one `writev` when the connection
    /// says it can, and otherwise copies every chunk into its own buffer first (that copy
    /// was 1.7–1.9 % of ingest's CPU, benches/README.md "Ninth session").
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        polled.map_err(|e| this.name(e))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        polled.map_err(|e| this.name(e))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        polled.map_err(|e| this.name(e))
    }
}

impl<S: Connection> Connection for Named<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

/// A TLS alert or a certificate rejected, ours or the server's; also a plaintext server
/// answering a TLS handshake (rustls reports that as a corrupt message).
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return true;
        }
        // hyper-rustls wraps tokio-rustls's io::Error (which wraps the rustls::Error) in
        // another io::Error, and io::Error::source skips the error it wraps.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// An error and its causes on one line.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

/// Whether a ClickHouse client error is a TLS failure (see [`TlsFailure`]): fatal, since
/// neither a certificate nor a CA changes by retrying.
pub fn is_tls_failure(err: &clickhouse::error::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<TlsFailure>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_client_is_built_with_system_roots() {
        let s = ClickHouseSettings {
            url: "https://127.0.0.1:1".into(),
            ..Default::default()
        };
        let c = client(&s);
        // Nothing listens on port 1: a connection error that names the endpoint, not a panic.
        let e = c.query("SELECT 1").execute().await.unwrap_err();
        let text = chain(&e);
        assert!(text.contains("https://127.0.0.1:1"), "{text}");
        assert!(!is_tls_failure(&e), "{text}");
    }

    /// Writes only through `poll_write_vectored`, counting the slices it was given.
    struct VectoredOnly {
        slices: usize,
        fail: bool,
    }

    impl hyper::rt::Write for VectoredOnly {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            panic!("a vectored connection is written with poll_write_vectored");
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let this = self.get_mut();
            if this.fail {
                return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
            }
            this.slices += bufs.len();
            Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A vectored connection stays vectored behind the naming wrapper, so hyper does not copy
    /// every INSERT body into its own buffer; its write errors still name the endpoint.
    #[test]
    fn the_named_connection_writes_vectored_and_names_its_errors() {
        use hyper::rt::Write;
        let mut named = Named {
            inner: VectoredOnly {
                slices: 0,
                fail: false,
            },
            endpoint: "http://ch:8123".into(),
        };
        assert!(named.is_write_vectored());
        let bufs = [
            std::io::IoSlice::new(b"head"),
            std::io::IoSlice::new(b"body"),
        ];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let written = Pin::new(&mut named).poll_write_vectored(&mut cx, &bufs);
        assert!(matches!(written, Poll::Ready(Ok(8))), "{written:?}");
        assert_eq!(named.inner.slices, 2);

        named.inner.fail = true;
        let Poll::Ready(Err(e)) = Pin::new(&mut named).poll_write_vectored(&mut cx, &bufs) else {
            panic!("the write fails");
        };
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(e.to_string().contains("ClickHouse http://ch:8123"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let tls = ClickHouseTlsSettings {
            ca_file: p.to_string_lossy().into(),
            ..Default::default()
        };
        let e = tls_config(&tls).unwrap_err();
        assert_eq!(e.key, "clickhouse.tls.ca_file");
    }
}
