//! The topics the loop reads, looked up once per message: each topic's kind and its
//! consumed-messages counter. A handful of topics, so a scan by name: no hashing of the
//! name, no label lookup and no allocation per message (the per-message `HashMap` lookup,
//! the label lookup and a `TopicPartition` made only for its partition number were 1.3 %
//! of an end-to-end profile, benches/README.md, tenth session).

use prometheus::IntCounter;

use crate::kafka::settings::KafkaSettings;
use crate::model::SourceKind;
use crate::telemetry::metrics::Metrics;

pub struct SubscribedTopics(Vec<SubscribedTopic>);

pub struct SubscribedTopic {
    name: Box<str>,
    pub kind: SourceKind,
    /// `messages_consumed_total{topic}`, resolved once.
    pub consumed: IntCounter,
}

impl SubscribedTopics {
    pub fn new(settings: &KafkaSettings, metrics: &Metrics) -> Self {
        let kinds = settings
            .audit_topics
            .iter()
            .map(|t| (t, SourceKind::AuditStream))
            .chain(
                settings
                    .webhook_topics
                    .iter()
                    .map(|t| (t, SourceKind::Webhook)),
            );
        // Validated settings list a topic under one kind only (`config`, kafka.webhook_topics).
        let topics = kinds
            .map(|(name, kind)| SubscribedTopic {
                name: name.as_str().into(),
                kind,
                consumed: metrics.consumed.with_label_values(&[name]),
            })
            .collect();
        SubscribedTopics(topics)
    }

    pub fn get(&self, topic: &str) -> Option<&SubscribedTopic> {
        self.0.iter().find(|t| *t.name == *topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_found_by_name_with_its_kind_and_counter() {
        let settings = KafkaSettings {
            audit_topics: vec!["audit-a".into(), "audit-b".into()],
            webhook_topics: vec!["hooks".into()],
            ..KafkaSettings::default()
        };
        let metrics = Metrics::new();
        let topics = SubscribedTopics::new(&settings, &metrics);
        assert_eq!(topics.get("audit-b").unwrap().kind, SourceKind::AuditStream);
        assert_eq!(topics.get("hooks").unwrap().kind, SourceKind::Webhook);
        assert!(topics.get("audit").is_none(), "no prefix match");
        assert!(topics.get("other").is_none());

        topics.get("hooks").unwrap().consumed.inc();
        topics.get("hooks").unwrap().consumed.inc();
        assert_eq!(metrics.consumed.with_label_values(&["hooks"]).get(), 2);
        assert_eq!(metrics.consumed.with_label_values(&["audit-a"]).get(), 0);
    }
}
