//! A private Kafka (KRaft, every node both broker and controller) owned by one test, for tests
//! that kill brokers: the shared one (`deploy/local/services`) is never stopped. Three nodes
//! for replication (leader failover, `acks=all` with `min.insync.replicas=2`), one node for a
//! plain broker outage. Same jars as the shared broker (`TOKENTRAIL_KAFKA_LIBS`); each node
//! has its own temp dir and free loopback ports, all formatted with one cluster id and a static
//! `controller.quorum.voters`. `kill` is SIGKILL of one node's JVM; `restart` starts it again on
//! the same data dir and ports, so clients reconnect to the same address (a TCP proxy in front
//! of a broker would not do: librdkafka connects to the address the broker advertises).
//!
//! Every JVM dies with the test: on `Drop`, and (Linux) through the parent-death signal should
//! the test binary itself be killed.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Nodes of a replicated cluster ([`ScratchKafkaCluster::start`]); node ids are `1..=n`.
pub const NODES: usize = 3;

/// Three JVMs starting at once on a two-core machine beside other servers are slow.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct ScratchKafkaCluster {
    nodes: Vec<Node>,
}

struct Node {
    id: usize,
    dir: tempfile::TempDir,
    port: u16,
    controller_port: u16,
    child: Option<Child>,
}

fn kafka_libs() -> String {
    std::env::var("TOKENTRAIL_KAFKA_LIBS").unwrap_or_else(|_| {
        panic!("TOKENTRAIL_KAFKA_LIBS is not set: eval \"$(deploy/local/services env)\" first")
    })
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding; one that starts
/// with `-` would be read by kafka-storage as an option.
/// Replication factor and `min.insync.replicas` of a cluster of `nodes`.
fn replication(nodes: usize) -> (usize, usize) {
    (nodes.min(3), if nodes >= 3 { 2 } else { 1 })
}

fn cluster_id() -> String {
    std::iter::repeat_with(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
    })
    .find(|id| !id.starts_with('-'))
    .expect("an id not starting with '-'")
}

impl Node {
    fn props(&self) -> PathBuf {
        self.dir.path().join("server.properties")
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `nodes` in the cluster: replication factor 3 and `min.insync.replicas=2` from three on.
    fn write_config(&self, voters: &str, nodes: usize) {
        let (id, port, controller_port) = (self.id, self.port, self.controller_port);
        let (rf, isr) = replication(nodes);
        let data = self.dir.path().join("data");
        let props = format!(
            "node.id={id}\n\
             process.roles=broker,controller\n\
             controller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             auto.create.topics.enable=false\n\
             default.replication.factor={rf}\n\
             min.insync.replicas={isr}\n\
             offsets.topic.replication.factor={rf}\n\
             offsets.topic.num.partitions=3\n\
             transaction.state.log.replication.factor={rf}\n\
             transaction.state.log.min.isr={isr}\n\
             share.coordinator.state.topic.replication.factor={rf}\n\
             share.coordinator.state.topic.min.isr={isr}\n\
             group.initial.rebalance.delay.ms=0\n\
             num.network.threads=1\n\
             num.io.threads=2\n",
            data = data.display()
        );
        std::fs::write(self.props(), props).expect("write properties");
        std::fs::write(
            self.dir.path().join("log4j2.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders><File name="file" fileName="{}"><PatternLayout pattern="[%d] %p %m (%c)%n"/></File></Appenders>
  <Loggers><Root level="warn"><AppenderRef ref="file"/></Root></Loggers>
</Configuration>"#,
                self.dir.path().join("kafka.log").display()
            ),
        )
        .expect("write log4j2.xml");
    }

    /// A `java` command with a small heap, killed by the kernel when the thread that spawned
    /// it (a test's runtime thread) ends, so a killed test binary leaves no JVM behind.
    fn java(&self) -> Command {
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xms96m",
            "-Xmx256m",
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
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec, and no
        // allocation: the error is built from a raw errno.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl: then nobody would ever send the signal.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd
    }

    fn format(&self, cluster_id: &str) -> Child {
        self.java()
            .args(["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c"])
            .arg(self.props())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kafka StorageTool")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
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
            .expect("start a scratch Kafka node");
        self.child = Some(child);
    }

    /// `Err` if the JVM has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            self.child = None;
            return Err(format!(
                "node {} exited ({status}): {}",
                self.id,
                self.log_tail()
            ));
        }
        if self.child.is_none() {
            return Err(format!("node {} is not running", self.id));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

/// Whether the node listening on `brokers` answers metadata listing all `nodes` brokers,
/// itself among them. A fresh client knows only that bootstrap address, so the answer comes
/// from that node (not from a peer whose view still lists a node that was just killed), and
/// Kafka lists only registered, unfenced brokers.
fn node_sees_all(brokers: String, id: usize, nodes: usize) -> bool {
    let probe: BaseProducer = match ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("log_level", "0")
        .create()
    {
        Ok(p) => p,
        Err(_) => return false,
    };
    probe
        .client()
        .fetch_metadata(None, Duration::from_secs(2))
        .map(|m| m.brokers().len() == nodes && m.brokers().iter().any(|b| b.id() as usize == id))
        .unwrap_or(false)
}

impl ScratchKafkaCluster {
    /// A cluster of [`NODES`]; see [`ScratchKafkaCluster::start_nodes`].
    pub async fn start() -> ScratchKafkaCluster {
        Self::start_nodes(NODES).await
    }

    /// Formats `nodes` fresh data dirs with one cluster id, starts the nodes and waits until
    /// each answers metadata listing all of them. A node that exits during start-up (say, a
    /// port taken by another test between `free_port` and Kafka's bind) makes the whole
    /// cluster start again with new ports, up to three times.
    pub async fn start_nodes(nodes: usize) -> ScratchKafkaCluster {
        // Skips (or fails on CI) before anything is spawned when the services are absent.
        let _ = crate::common::services();
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(nodes).await {
                Ok(cluster) => return cluster,
                Err(why) => {
                    eprintln!("scratch Kafka cluster failed to start, trying again: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("scratch Kafka cluster did not start: {failures:#?}");
    }

    async fn try_start(count: usize) -> Result<ScratchKafkaCluster, String> {
        let ports = crate::common::free_ports(2 * count);
        let nodes: Vec<Node> = (0..count)
            .map(|i| Node {
                id: i + 1,
                dir: tempfile::tempdir().expect("temp dir"),
                port: ports[2 * i],
                controller_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        for n in &nodes {
            n.write_config(&voters, count);
        }
        // Format the dirs at once: each StorageTool is a JVM start of a few seconds.
        let cluster_id = cluster_id();
        let formats: Vec<Child> = nodes.iter().map(|n| n.format(&cluster_id)).collect();
        for (n, f) in nodes.iter().zip(formats) {
            let out = f.wait_with_output().expect("wait for kafka StorageTool");
            assert!(
                out.status.success(),
                "formatting node {} failed: {}{}",
                n.id,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // From here on, Drop kills whatever was started, also on an early return.
        let mut cluster = ScratchKafkaCluster { nodes };
        for n in &mut cluster.nodes {
            n.spawn();
        }
        cluster.wait_ready(&(1..=count).collect::<Vec<_>>()).await?;
        Ok(cluster)
    }

    /// Waits until every node in `ids` answers metadata listing all the brokers; `Err` if
    /// any running node exits meanwhile.
    async fn wait_ready(&mut self, ids: &[usize]) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut pending: Vec<usize> = ids.to_vec();
        loop {
            for n in &mut self.nodes {
                if n.child.is_some() || pending.contains(&n.id) {
                    n.check_alive()?;
                }
            }
            let mut still = Vec::new();
            for &id in &pending {
                let (brokers, count) = (self.node(id).brokers(), self.nodes.len());
                let up = tokio::task::spawn_blocking(move || node_sees_all(brokers, id, count))
                    .await
                    .unwrap_or(false);
                if !up {
                    still.push(id);
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let tails: String = pending
                    .iter()
                    .map(|&id| format!("\n=== node {id} ==={}", self.node(id).log_tail()))
                    .collect();
                panic!("scratch Kafka nodes {pending:?} not ready after {START_TIMEOUT:?}{tails}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn node(&self, id: usize) -> &Node {
        let count = self.nodes.len();
        assert!(
            (1..=count).contains(&id),
            "node ids are 1..={count}, not {id}"
        );
        &self.nodes[id - 1]
    }

    fn node_mut(&mut self, id: usize) -> &mut Node {
        let count = self.nodes.len();
        assert!(
            (1..=count).contains(&id),
            "node ids are 1..={count}, not {id}"
        );
        &mut self.nodes[id - 1]
    }

    /// The bootstrap list of every node, `127.0.0.1:p1,127.0.0.1:p2,…`.
    pub fn brokers(&self) -> String {
        self.nodes
            .iter()
            .map(Node::brokers)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL of node `node` (1..=n), as in a crash. Of three, the other two keep a
    /// controller quorum and, with `min.insync.replicas=2`, accept `acks=all` writes once the
    /// controller has fenced the dead node (its session timeout, 9 s by default) and moved its
    /// leaderships; a one-node cluster is down until `restart`.
    pub fn kill(&mut self, node: usize) {
        self.node_mut(node).kill();
    }

    /// Starts node `node` again on the same data dir and ports (three tries, a second apart:
    /// clients reconnect to the same address, so the ports cannot change) and waits until it
    /// answers metadata listing all the brokers.
    pub async fn restart(&mut self, node: usize) {
        self.kill(node);
        let mut failures = Vec::new();
        for _ in 0..3 {
            self.node_mut(node).spawn();
            match self.wait_ready(&[node]).await {
                Ok(()) => return,
                Err(why) => failures.push(why),
            }
            self.node_mut(node).kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("scratch Kafka node {node} did not restart: {failures:#?}");
    }

    /// Creates `name` with replication factor 3 and `min.insync.replicas=2` (on one node: 1
    /// and 1).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let (rf, isr) = replication(self.nodes.len());
        let isr = isr.to_string();
        crate::common::create_replicated_topic(
            &self.brokers(),
            name,
            partitions,
            rf as i32,
            &[("min.insync.replicas", &isr)],
        )
        .await;
    }
}

impl Drop for ScratchKafkaCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// Produces `range` as payloads `m<i>` and waits for every acknowledgement. The sends are
/// polled together: `FutureProducer::send` enqueues only when polled, so awaiting one after
/// another would produce one message per round trip.
async fn produce_range<C: rdkafka::ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    range: std::ops::Range<usize>,
) {
    let payloads: Vec<String> = range.map(|i| format!("m{i}")).collect();
    let acks = futures::future::join_all(payloads.iter().map(|p| {
        producer.send(
            FutureRecord::<(), str>::to(topic).payload(p),
            Duration::from_secs(30),
        )
    }))
    .await;
    for (p, ack) in payloads.iter().zip(acks) {
        ack.unwrap_or_else(|(e, _)| panic!("producing {p} to {topic}: {e}"));
    }
}

/// Every message of `topic` (partitions `0..partitions`), read from the beginning up to the
/// end each partition has when this starts, by a fresh consumer.
fn consume_all(brokers: &str, topic: &str, partitions: i32) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::common::unique("kafka_cluster"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: HashMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut payloads = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while next.iter().any(|(p, n)| *n < ends[p]) {
        assert!(
            std::time::Instant::now() < deadline,
            "consuming {topic}: at {next:?}, ends {ends:?}"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                payloads.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into());
            }
            Some(Err(e)) => eprintln!("consuming {topic}: {e}"),
            None => {}
        }
    }
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_survive_one_killed() {
    let started = std::time::Instant::now();
    let mut cluster = ScratchKafkaCluster::start().await;
    eprintln!("cluster up after {:?}", started.elapsed());
    let brokers = cluster.brokers();
    let topic = crate::common::unique("cluster");
    cluster.create_topic(&topic, 3).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    produce_range(&producer, &topic, 0..1000).await;
    eprintln!("first 1000 acknowledged after {:?}", started.elapsed());

    cluster.kill(2);
    produce_range(&producer, &topic, 1000..2000).await;
    eprintln!(
        "1000 more acknowledged with node 2 down after {:?}",
        started.elapsed()
    );

    cluster.restart(2).await;
    eprintln!("node 2 back after {:?}", started.elapsed());

    let t = topic.clone();
    let payloads = tokio::task::spawn_blocking(move || consume_all(&brokers, &t, 3))
        .await
        .expect("consumer task");
    let distinct: BTreeSet<&str> = payloads.iter().map(String::as_str).collect();
    let expected: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
    assert_eq!(distinct.len(), 2000, "{} messages read", payloads.len());
    assert!(
        expected.iter().all(|p| distinct.contains(p.as_str())),
        "every acknowledged payload is read back"
    );
    assert_eq!(
        payloads.len(),
        2000,
        "the idempotent producer wrote no duplicates"
    );
    eprintln!("done after {:?}", started.elapsed());
}
