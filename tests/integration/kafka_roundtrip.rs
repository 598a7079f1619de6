//! The real broker: produce, consume in a consumer group, commit, read the commit back.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn produce_consume_and_commit_in_a_group() {
    let svc = services();
    let topic = unique("it_kafka");
    create_topic(&svc.brokers, &topic, 3).await;
    let messages: Vec<Outgoing> = (0..30)
        .map(|i| {
            Outgoing::new(format!("{{\"n\":{i}}}"))
                .key(&format!("author-{}", i % 5))
                .header("X-Gitlab-Audit-Event-Type", "repository_git_operation")
        })
        .collect();
    produce_all(&producer(&svc.brokers), &topic, &messages).await;

    let group = unique("it_group");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &svc.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = Vec::new();
    let mut next = TopicPartitionList::new();
    while seen.len() < 30 {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("message within 30 s")
            .unwrap();
        let header = msg.headers().unwrap().get(0);
        assert_eq!(header.key, "X-Gitlab-Audit-Event-Type");
        seen.push(String::from_utf8(msg.payload().unwrap().to_vec()).unwrap());
        next.add_partition_offset(&topic, msg.partition(), Offset::Offset(msg.offset() + 1))
            .unwrap();
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 30, "every message exactly once");
    consumer.commit(&next, CommitMode::Sync).unwrap();

    // A fresh client in the same group sees the committed positions: 30 messages in total.
    let checker: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &svc.brokers)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let committed = checker
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("partition {} not committed: {other:?}", e.partition()),
        })
        .sum();
    assert_eq!(total, 30);
}
