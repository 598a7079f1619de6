//! A ClickHouse server owned by one test, so that test can stop and restart it without
//! disturbing the shared server every other test uses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PrivateClickHouse {
    dir: tempfile::TempDir,
    http_port: u16,
    child: Option<Child>,
}

/// A server's config.xml: its own dir and loopback ports, with `extra` elements (replication's,
/// for `clickhouse_cluster`).
pub fn config(dir: &Path, http_port: u16, tcp_port: u16, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{d}/data/</path>
    <tmp_path>{d}/data/tmp/</tmp_path>
    <user_files_path>{d}/data/user_files/</user_files_path>
    <format_schema_path>{d}/data/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
{extra}
</yandex>
"#
    )
}

/// Passwordless `default` on loopback; also the users of `clickhouse_cluster`'s replicas.
pub const USERS: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"#;

impl PrivateClickHouse {
    pub async fn start() -> Self {
        // Skips (or fails on CI) before anything is spawned when the services are absent.
        let _ = crate::common::services();
        let dir = tempfile::tempdir().unwrap();
        let [http_port, tcp_port] = crate::common::free_ports(2)[..] else {
            unreachable!()
        };
        std::fs::write(
            dir.path().join("config.xml"),
            config(dir.path(), http_port, tcp_port, ""),
        )
        .unwrap();
        std::fs::write(dir.path().join("users.xml"), USERS).unwrap();
        let mut server = PrivateClickHouse {
            dir,
            http_port,
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.xml")
    }

    /// Starts the server (again, on the same data) and waits until it answers.
    pub async fn resume(&mut self) {
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.config_path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server on PATH (deploy/local/services install)");
        self.child = Some(child);
        let url = self.url();
        crate::common::eventually(Duration::from_secs(60), "private ClickHouse up", || {
            let url = url.clone();
            async move { ping(&url).await.then_some(()) }
        })
        .await;
    }

    /// Stops the server abruptly, as a crash or a pulled plug would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the server at `url` answers a query (also `clickhouse_cluster`'s readiness check).
pub async fn ping(url: &str) -> bool {
    clickhouse::Client::default()
        .with_url(url)
        .with_validation(false)
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .is_ok()
}
