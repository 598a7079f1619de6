//! A private single-node Kafka broker (KRaft) for tests that must kill the broker: the shared
//! one (`deploy/local/services`) is never stopped. Same jars (`TOKENTRAIL_KAFKA_LIBS`), its own
//! temp dir, node id and free loopback ports. `kill` is SIGKILL (an abrupt crash); `restart`
//! starts it again on the same data dir and ports, so clients reconnect to the same address.
//!
//! A TCP proxy in front of the shared broker would not do: librdkafka connects to the address
//! the broker advertises in its metadata, bypassing the proxy after bootstrap.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct ScratchBroker {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn kafka_libs() -> String {
    std::env::var("TOKENTRAIL_KAFKA_LIBS").unwrap_or_else(|_| {
        panic!("TOKENTRAIL_KAFKA_LIBS is not set: eval \"$(deploy/local/services env)\" first")
    })
}

impl ScratchBroker {
    /// Formats a fresh data dir, starts the broker and waits until it answers metadata. A
    /// broker that exits during start-up (say, a port taken by another test between
    /// `free_port` and Kafka's bind) is tried again with new ports, up to three times.
    pub async fn start() -> ScratchBroker {
        // Skips (or fails on CI) before anything is spawned when the services are absent.
        let _ = crate::common::services();
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start().await {
                Ok(broker) => return broker,
                Err(why) => {
                    eprintln!("scratch broker failed to start, trying again: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("scratch broker did not start: {failures:#?}");
    }

    async fn try_start() -> Result<ScratchBroker, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let controller_port = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let data = dir.path().join("data");
        let props = format!(
            "node.id=7\n\
             process.roles=broker,controller\n\
             controller.quorum.voters=7@127.0.0.1:{controller_port}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             auto.create.topics.enable=false\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             num.network.threads=1\n\
             num.io.threads=2\n",
            data = data.display()
        );
        std::fs::write(dir.path().join("server.properties"), props).expect("write properties");
        std::fs::write(
            dir.path().join("log4j2.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders><File name="file" fileName="{}"><PatternLayout pattern="[%d] %p %m (%c)%n"/></File></Appenders>
  <Loggers><Root level="warn"><AppenderRef ref="file"/></Root></Loggers>
</Configuration>"#,
                dir.path().join("kafka.log").display()
            ),
        )
        .expect("write log4j2.xml");
        // A KRaft cluster id is 16 random bytes in URL-safe base64 without padding; one that
        // starts with `-` would be read by kafka-storage as an option.
        let cluster_id = std::iter::repeat_with(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
        })
        .find(|id| !id.starts_with('-'))
        .expect("an id not starting with '-'");
        let mut broker = ScratchBroker {
            dir,
            port,
            child: None,
        };
        let format = broker
            .java()
            .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
            .arg(broker.props())
            .output()
            .expect("run kafka StorageTool");
        assert!(
            format.status.success(),
            "formatting the scratch broker failed: {}",
            String::from_utf8_lossy(&format.stderr)
        );
        broker.launch().await?;
        Ok(broker)
    }

    fn props(&self) -> PathBuf {
        self.dir.path().join("server.properties")
    }

    fn java(&self) -> Command {
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            self.dir.path().join("log4j2.xml").display()
        ))
        .arg("-cp")
        .arg(format!("{}/*", kafka_libs()));
        cmd
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) -> Result<(), String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("kafka.out"))
            .expect("kafka.out");
        let child = self
            .java()
            .arg("kafka.Kafka")
            .arg(self.props())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start the scratch Kafka broker");
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let brokers = self.brokers();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "exited during startup ({status}): {}",
                    self.log_tail()
                ));
            }
            let b = brokers.clone();
            let up = tokio::task::spawn_blocking(move || {
                let probe: BaseProducer = ClientConfig::new()
                    .set("bootstrap.servers", &b)
                    .create()
                    .expect("probe client");
                probe
                    .client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .map(|m| m.brokers().len() == 1)
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if up {
                return Ok(());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "scratch broker not ready after {START_TIMEOUT:?}: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// SIGKILL, as in a crash; acknowledged writes are in the page cache and survive it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same data dir and ports (three tries, a second apart:
    /// clients reconnect to the same address, so the ports cannot change).
    pub async fn restart(&mut self) {
        self.kill();
        let mut failures = Vec::new();
        for _ in 0..3 {
            match self.launch().await {
                Ok(()) => return,
                Err(why) => failures.push(why),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("scratch broker did not restart: {failures:#?}");
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for f in ["kafka.out", "kafka.log"] {
            let content = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let from = content.len().saturating_sub(3000);
            let start = (from..content.len())
                .find(|i| content.is_char_boundary(*i))
                .unwrap_or(content.len());
            text.push_str(&format!("\n--- {f} ---\n{}", &content[start..]));
        }
        text
    }
}

impl Drop for ScratchBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
