//! A ClickHouse cluster owned by one test: a ZooKeeper (the jars `deploy/local/services
//! install` fetched, `TOKENTRAIL_ZOOKEEPER_LIBS`) and ClickHouse 18.16 servers as replicas of
//! one shard of the cluster [`CLUSTER`], each with its own temp dir and free loopback ports.
//! `kill` is SIGKILL (a crash); `restart` starts the replica again on the same data and ports.
//! Every process dies with the value (Drop).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `remote_servers` name of the cluster (`clickhouse.cluster`).
pub const CLUSTER: &str = "tokentrail_test";

const START_TIMEOUT: Duration = Duration::from_secs(90);

struct Replica {
    dir: PathBuf,
    http_port: u16,
    tcp_port: u16,
    interserver_port: u16,
    child: Option<Child>,
}

pub struct ClickHouseCluster {
    dir: tempfile::TempDir,
    zookeeper: Option<Child>,
    zookeeper_port: u16,
    replicas: Vec<Replica>,
}

impl ClickHouseCluster {
    /// ZooKeeper and `replicas` servers, each answering queries; the cluster is defined on all.
    pub async fn start(replicas: usize) -> ClickHouseCluster {
        // Skips (or fails on CI) before anything is spawned when the services are absent.
        let _ = crate::common::services();
        let libs = std::env::var("TOKENTRAIL_ZOOKEEPER_LIBS").unwrap_or_else(|_| {
            panic!("TOKENTRAIL_ZOOKEEPER_LIBS is not set: eval \"$(deploy/local/services env)\"")
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = crate::common::free_ports(1 + 3 * replicas);
        let zookeeper_port = ports[0];
        let mut cluster = ClickHouseCluster {
            zookeeper: None,
            zookeeper_port,
            replicas: (0..replicas)
                .map(|i| Replica {
                    dir: dir.path().join(format!("replica{}", i + 1)),
                    http_port: ports[1 + 3 * i],
                    tcp_port: ports[2 + 3 * i],
                    interserver_port: ports[3 + 3 * i],
                    child: None,
                })
                .collect(),
            dir,
        };
        cluster.start_zookeeper(&libs).await;
        let remote_servers = cluster.remote_servers();
        for (i, r) in cluster.replicas.iter().enumerate() {
            std::fs::create_dir_all(r.dir.join("data")).unwrap();
            std::fs::write(
                r.dir.join("config.xml"),
                r.config(i + 1, zookeeper_port, &remote_servers),
            )
            .unwrap();
            std::fs::write(r.dir.join("users.xml"), crate::private_clickhouse::USERS).unwrap();
        }
        for i in 0..replicas {
            cluster.restart(i).await;
        }
        cluster
    }

    async fn start_zookeeper(&mut self, libs: &str) {
        let data = self.dir.path().join("zookeeper");
        std::fs::create_dir_all(&data).unwrap();
        let out = std::fs::File::create(self.dir.path().join("zookeeper.out")).unwrap();
        let child = Command::new("java")
            .args([
                "-Xms64m",
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .args(["-Dzookeeper.admin.enableServer=false", "-cp"])
            .arg(format!("{libs}/*"))
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.zookeeper_port.to_string())
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("java on PATH");
        self.zookeeper = Some(child);
        let port = self.zookeeper_port;
        crate::common::eventually(START_TIMEOUT, "ZooKeeper answers", || async move {
            tokio::task::spawn_blocking(move || zookeeper_answers(port))
                .await
                .unwrap()
                .then_some(())
        })
        .await;
    }

    /// The one shard, every replica in it; `internal_replication`: a replicated table copies
    /// its own inserts.
    fn remote_servers(&self) -> String {
        let replicas: String = self
            .replicas
            .iter()
            .map(|r| {
                format!(
                    "<replica><host>127.0.0.1</host><port>{}</port></replica>",
                    r.tcp_port
                )
            })
            .collect();
        format!(
            "<remote_servers><{CLUSTER}><shard><internal_replication>true</internal_replication>\
             {replicas}</shard></{CLUSTER}></remote_servers>"
        )
    }

    pub fn url(&self, replica: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[replica].http_port)
    }

    pub fn client(&self, replica: usize, database: &str) -> clickhouse::Client {
        crate::common::clickhouse(&self.url(replica), database)
    }

    /// SIGKILL, as a crash or a pulled plug.
    pub fn kill(&mut self, replica: usize) {
        if let Some(mut child) = self.replicas[replica].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the replica (again, on the same data and ports) and waits until it answers.
    pub async fn restart(&mut self, replica: usize) {
        self.kill(replica);
        let r = &mut self.replicas[replica];
        let out = std::fs::File::create(r.dir.join("server.out")).unwrap();
        let child = Command::new("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                r.dir.join("config.xml").display()
            ))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("clickhouse-server on PATH (deploy/local/services install)");
        r.child = Some(child);
        let url = self.url(replica);
        let log = self.replicas[replica].dir.join("server.err.log");
        crate::common::eventually(
            START_TIMEOUT,
            &format!("replica {replica} up ({log:?})"),
            || {
                let url = url.clone();
                async move { crate::private_clickhouse::ping(&url).await.then_some(()) }
            },
        )
        .await;
    }

    /// Waits until `replica` has fetched every part the others logged, for each replicated
    /// table of `database`.
    pub async fn sync(&self, replica: usize, database: &str) {
        let client = self.client(replica, database);
        let tables: Vec<String> = client
            .query(
                "SELECT name FROM system.tables WHERE database = currentDatabase() \
                 AND engine LIKE 'Replicated%' ORDER BY name",
            )
            .fetch_all()
            .await
            .unwrap();
        for table in tables {
            client
                .query(&format!("SYSTEM SYNC REPLICA {table}"))
                .execute()
                .await
                .unwrap_or_else(|e| panic!("SYSTEM SYNC REPLICA {table}: {e}"));
        }
    }
}

impl Replica {
    fn config(&self, number: usize, zookeeper_port: u16, remote_servers: &str) -> String {
        let replication = format!(
            r#"    <interserver_http_port>{interserver}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper><node><host>127.0.0.1</host><port>{zookeeper_port}</port></node></zookeeper>
    <macros><shard>01</shard><replica>replica{number}</replica></macros>
    {remote_servers}
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>"#,
            interserver = self.interserver_port,
        );
        crate::private_clickhouse::config(&self.dir, self.http_port, self.tcp_port, &replication)
    }
}

impl Drop for ClickHouseCluster {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
        if let Some(mut zk) = self.zookeeper.take() {
            let _ = zk.kill();
            let _ = zk.wait();
        }
    }
}

/// ZooKeeper's `srvr` answer names its mode once it serves (`srvr` is on its default list).
fn zookeeper_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = String::new();
    s.write_all(b"srvr").is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.contains("Mode:")
}
