//! Secure connections on the local services (deploy/local/lib/tls.sh): Kafka SASL_SSL with
//! SCRAM-SHA-512 and an SSL listener that requires client certificates, ClickHouse's
//! https_port, all signed by a test CA. `tokentrail ingest` end to end over them with no
//! secret in any copy, and each misconfiguration failing at once with the endpoint named.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::message::Headers;
use rdkafka::producer::FutureRecord;
use tokentrail::config::{Secret, Settings};
use tokentrail::store::read::ReadError;
use tokentrail::store::sink;
use tokentrail::telemetry::metrics::Metrics;

use crate::common::*;

/// The TLS endpoints `deploy/local/services env` exports.
struct Tls {
    dir: PathBuf,
    sasl_ssl: String,
    ssl: String,
    ch_https: String,
    user: String,
    password: String,
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(deploy/local/services env)\"` (services start)")
    })
}

fn tls() -> Tls {
    let dir = PathBuf::from(required("TOKENTRAIL_TEST_TLS_DIR"));
    let password = std::fs::read_to_string(dir.join("scram-password"))
        .unwrap()
        .trim()
        .to_string();
    Tls {
        dir,
        sasl_ssl: required("TOKENTRAIL_TEST_KAFKA_SASL_SSL"),
        ssl: required("TOKENTRAIL_TEST_KAFKA_SSL"),
        ch_https: required("TOKENTRAIL_TEST_CH_HTTPS"),
        user: required("TOKENTRAIL_TEST_KAFKA_SCRAM_USER"),
        password,
    }
}

impl Tls {
    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// Test settings over SASL_SSL Kafka and HTTPS ClickHouse (topics are created over the
/// plaintext listener of the same broker).
fn secure(svc: &Services, t: &Tls, name: &str) -> Settings {
    let mut s = settings(svc, name);
    s.kafka.brokers = t.sasl_ssl.clone();
    s.kafka.tls.ca_file = t.file("ca.pem");
    s.kafka.sasl.mechanism = "SCRAM-SHA-512".into();
    s.kafka.sasl.username = t.user.clone();
    s.kafka.sasl.password = Secret::new(&t.password);
    s.clickhouse.url = t.ch_https.clone();
    s.clickhouse.tls.ca_file = t.file("ca.pem");
    s.validate().expect("secure settings are valid");
    s
}

/// Every record of `topic` (headers and payload as raw bytes), read over plaintext.
async fn read_all(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    read_to_end(brokers, topic, Duration::from_secs(20), |m| {
        let mut bytes = m.payload().unwrap_or_default().to_vec();
        for h in m.headers().into_iter().flat_map(|h| h.iter()) {
            bytes.extend_from_slice(h.key.as_bytes());
            bytes.extend_from_slice(h.value.unwrap_or_default());
        }
        bytes
    })
    .await
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The binary with the config file and the secrets as `_file` variables.
fn tokentrail(config: &std::path::Path, secrets: &[(&str, PathBuf)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrail"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAIL__")) {
        cmd.env_remove(key);
    }
    cmd.arg("--config").arg(config).stdin(Stdio::null());
    for (key, path) in secrets {
        cmd.env(key, path);
    }
    cmd
}

#[tokio::test]
async fn ingest_end_to_end_over_sasl_ssl_and_https_leaves_no_secret_anywhere() {
    let (svc, t) = (services(), tls());
    let name = unique("tls_e2e");
    let mut s = secure(&svc, &t, &name);
    s.kafka.sasl.password = Secret::default(); // from a file, below
    for (topic, partitions) in [
        (&s.kafka.audit_topics[0], 2),
        (&s.kafka.webhook_topics[0], 1),
        (&s.kafka.dead_letter_topic, 1),
    ] {
        create_topic(&svc.brokers, topic, partitions).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let planted = format!("planted-{}", uuid::Uuid::new_v4());
    let planted_file = dir.path().join("hec-token");
    std::fs::write(&planted_file, &planted).unwrap();
    let config = dir.path().join("tokentrail.toml");
    std::fs::write(&config, s.to_redacted_toml()).unwrap();
    let secrets = [
        (
            "TOKENTRAIL__KAFKA__SASL__PASSWORD_FILE",
            t.dir.join("scram-password"),
        ),
        ("TOKENTRAIL__SIEM__HEC__TOKEN_FILE", planted_file),
    ];
    let run = |args: &[&str]| {
        let out = tokentrail(&config, &secrets)
            .args(args)
            .output()
            .expect("run tokentrail");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "tokentrail {args:?}:\n{text}");
        text
    };
    run(&["migrate"]);
    run(&["simulate", "--jobs", "30", "--seed", "7", "--to", "kafka"]);
    // Poison carrying the planted secret in GitLab's token headers.
    let poison: Vec<Outgoing> = (0..3)
        .map(|i| {
            Outgoing::new(format!("{{not json {i}"))
                .header("X-Gitlab-Token", &planted)
                .header("X-Gitlab-Event-Streaming-Token", &planted)
        })
        .collect();
    produce_all(&producer(&svc.brokers), &s.kafka.audit_topics[0], &poison).await;

    let log_path = dir.path().join("ingest.log");
    let mut ingest = KillOnDrop::new(
        tokentrail(&config, &secrets)
            .arg("ingest")
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut plain = s.clone();
    plain.kafka.brokers = svc.brokers.clone();
    let topics = [
        (s.kafka.audit_topics[0].clone(), 2),
        (s.kafka.webhook_topics[0].clone(), 1),
    ];
    let client = clickhouse(&svc.clickhouse_url, &name);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            ingest.child().try_wait().unwrap().is_none(),
            "ingest exited early; log: {}",
            log_path.display()
        );
        let rows: u64 = client
            .query("SELECT count() FROM token_use")
            .fetch_one()
            .await
            .unwrap_or(0);
        if rows > 0 && committed_to_the_end(&plain, &topics).await {
            break;
        }
        assert!(Instant::now() < deadline, "ingest over TLS did not finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sent = Command::new("kill")
        .args(["-TERM", &ingest.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(ingest.child().wait().unwrap().success());

    let dead = read_all(&svc.brokers, &s.kafka.dead_letter_topic).await;
    assert!(dead.len() >= 3, "{} dead-letter copies", dead.len());
    let log = std::fs::read(&log_path).unwrap();
    assert!(contains(&log, "TRACE"), "trace logging was on");
    let printed = run(&["ingest", "--print-config"]);
    assert!(printed.contains("password = \"***\""), "{printed}");
    for secret in [planted.as_str(), t.password.as_str()] {
        assert!(
            !dead.iter().any(|d| contains(d, secret)),
            "secret in the DLQ"
        );
        assert!(!contains(&log, secret), "secret in the trace log");
        assert!(!printed.contains(secret), "secret in --print-config");
    }
}

#[tokio::test]
async fn mutual_tls_to_kafka_and_https_to_clickhouse() {
    let (svc, t) = (services(), tls());
    let name = unique("tls_mtls");
    let mut s = secure(&svc, &t, &name);
    s.kafka.brokers = t.ssl.clone();
    s.kafka.sasl = Default::default();
    s.kafka.tls.cert_file = t.file("client.pem");
    s.kafka.tls.key_file = t.file("client.key");
    s.clickhouse.tls.cert_file = t.file("client.pem");
    s.clickhouse.tls.key_file = t.file("client.key");
    s.clickhouse.database = "default".into();
    s.validate().unwrap();
    create_topic(&svc.brokers, &name, 1).await;
    let producer = tokio::task::spawn_blocking({
        let k = s.kafka.clone();
        move || tokentrail::kafka::producer::producer(&k)
    })
    .await
    .unwrap()
    .expect("producer over mTLS");
    producer
        .send(
            FutureRecord::<str, str>::to(&name).payload("over mTLS"),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered over mTLS");
    let client = sink::client(&s.clickhouse);
    let version = tokentrail::store::read::server_version(&client)
        .await
        .expect("HTTPS");
    assert!(version.to_string().starts_with("18."), "{version}");
}

/// `consumer()` must fail within seconds, with the broker and the reason in the message.
async fn refused(what: &str, s: &Settings, endpoint: &str, reason: &str) {
    let k = s.kafka.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        tokentrail::kafka::consumer::consumer(&k, Metrics::new()).map(|_| ())
    })
    .await
    .unwrap();
    let err = result.expect_err(what).to_string();
    assert!(tokentrail::kafka::client::is_fatal(
        &rdkafka::error::KafkaError::ClientCreation(String::new())
    ));
    assert!(
        err.contains(endpoint) && err.contains(reason),
        "{what}: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{what}: took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn kafka_misconfigurations_fail_at_once_naming_the_broker() {
    let (svc, t) = (services(), tls());
    let s = secure(&svc, &t, &unique("tls_kneg"));

    let mut wrong = s.clone();
    wrong.kafka.sasl.password = Secret::new("not-the-password");
    refused("wrong password", &wrong, &t.sasl_ssl, "invalid credentials").await;

    let mut unknown_ca = s.clone();
    unknown_ca.kafka.tls.ca_file = t.file("other-ca.pem");
    refused(
        "unknown CA",
        &unknown_ca,
        &t.sasl_ssl,
        "certificate verify failed",
    )
    .await;

    let mut expired = s.clone();
    expired.kafka.brokers = t.ssl.clone();
    expired.kafka.sasl = Default::default();
    expired.kafka.tls.cert_file = t.file("expired.pem");
    expired.kafka.tls.key_file = t.file("expired.key");
    refused(
        "expired client certificate",
        &expired,
        &t.ssl,
        "certificate",
    )
    .await;

    let mut plaintext = s.clone();
    plaintext.kafka.tls = Default::default();
    plaintext.kafka.sasl = Default::default();
    refused("plaintext to TLS", &plaintext, &t.sasl_ssl, "[kafka.tls]").await;

    // An outage is not a misconfiguration: the consumer is built, the pipeline rides it out.
    let mut down = plaintext.clone();
    down.kafka.brokers = "127.0.0.1:1".into();
    let started = Instant::now();
    let built = tokio::task::spawn_blocking(move || {
        tokentrail::kafka::consumer::consumer(&down.kafka, Metrics::new()).map(|_| ())
    })
    .await
    .unwrap();
    assert!(built.is_ok(), "{built:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A TLS server on a free port presenting `cert`/`key`, for certificates ClickHouse 18.16
/// is not given (the expired one). Accepts until the test's runtime ends.
async fn tls_server(t: &Tls, cert: &str, key: &str) -> String {
    let certs = rustls_pemfile::certs(&mut std::fs::read(t.file(cert)).unwrap().as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut std::fs::read(t.file(key)).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = acceptor.accept(stream).await;
        }
    });
    format!("https://{addr}")
}

async fn version_error(s: &Settings) -> ReadError {
    let client = sink::client(&s.clickhouse);
    tokentrail::store::read::server_version(&client)
        .await
        .expect_err("must fail")
}

#[tokio::test]
async fn clickhouse_misconfigurations_fail_clearly_naming_the_endpoint() {
    let (svc, t) = (services(), tls());
    let s = secure(&svc, &t, &unique("tls_chneg"));

    let mut unknown_ca = s.clone();
    unknown_ca.clickhouse.tls.ca_file = t.file("other-ca.pem");
    match version_error(&unknown_ca).await {
        ReadError::Fatal { message, .. } => assert!(
            message.contains(&t.ch_https) && message.contains("UnknownIssuer"),
            "{message}"
        ),
        other => panic!("unknown CA must be fatal: {other}"),
    }

    let mut expired = s.clone();
    expired.clickhouse.url = tls_server(&t, "expired.pem", "expired.key").await;
    match version_error(&expired).await {
        ReadError::Fatal { message, .. } => assert!(
            message.contains(&expired.clickhouse.url) && message.contains("certificate expired"),
            "{message}"
        ),
        other => panic!("an expired certificate must be fatal: {other}"),
    }

    // Plaintext to the TLS port: the server resets the connection. That looks like any
    // network fault, so it stays retryable (ingest retries with capped backoff); the
    // message names the endpoint.
    let mut plaintext = s.clone();
    plaintext.clickhouse.url = t.ch_https.replace("https://", "http://");
    plaintext.clickhouse.tls = Default::default();
    let err = version_error(&plaintext).await.to_string();
    assert!(err.contains(&plaintext.clickhouse.url), "{err}");

    let mut wrong = s.clone();
    wrong.clickhouse.user = "tt_reader".into();
    wrong.clickhouse.password = Secret::new("not-the-password");
    match version_error(&wrong).await {
        ReadError::Fatal { message, .. } => {
            assert!(message.contains("clickhouse.password"), "{message}");
            assert!(!message.contains("not-the-password"), "{message}");
        }
        other => panic!("a wrong password must be fatal: {other}"),
    }

    // The ingest binary stops at once on a TLS failure instead of retrying.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    let mut file_settings = unknown_ca.clone();
    file_settings.kafka.sasl.password = Secret::default();
    std::fs::write(&config, file_settings.to_redacted_toml()).unwrap();
    let started = Instant::now();
    let out = tokentrail(
        &config,
        &[(
            "TOKENTRAIL__KAFKA__SASL__PASSWORD_FILE",
            t.dir.join("scram-password"),
        )],
    )
    .arg("ingest")
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&t.ch_https) && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
