//! Delivery: turns logical events into Kafka records with GitLab's delivery quirks —
//! per-message latency (so arrival order differs from event order), re-dispatches,
//! webhook retries, batched arrays and poison messages — and counts them in the truth.
//!
//! Pending records sit in a min-heap keyed by delivery time. The scenario only drains
//! records older than the earliest time it can still produce, so output is sorted by
//! `timestamp_ms` while memory holds just the jobs in flight.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::gitlab::{AuditBody, AuditId};
use super::{BadMessageTruth, GroundTruth, SimConfig, SimMessage};
use crate::model::SourceKind;

/// GitLab flushes a batch after a short time even when it is not full.
const BATCH_MAX_WAIT_MS: i64 = 2_000;

enum Item {
    Audit {
        event_type: &'static str,
        key: Option<String>,
        json: Vec<u8>,
        logical: bool,
    },
    Webhook {
        headers: Vec<(String, String)>,
        key: Option<String>,
        json: Vec<u8>,
        logical: bool,
    },
    Bad {
        source: SourceKind,
        key: Option<String>,
        headers: Vec<(String, String)>,
        payload: Vec<u8>,
        reason: &'static str,
    },
}

struct Pending {
    at: i64,
    seq: u64,
    item: Item,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Batch {
    first_at: i64,
    size: usize,
    elements: Vec<Vec<u8>>,
    bad: Vec<(usize, &'static str)>,
}

pub struct Outbox {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    batch: Option<Batch>,
    ready: VecDeque<SimMessage>,
    emitted: u64,
    /// Delivery time of the last released record.
    clock: i64,
    streaming_token: String,
    duplicate_share: f64,
    batch_share: f64,
    retry_share: f64,
    bad_share: f64,
    pub truth: GroundTruth,
}

pub fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

impl Outbox {
    pub fn new(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Outbox {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let streaming_token = (0..24)
            .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
            .collect();
        Outbox {
            heap: BinaryHeap::new(),
            seq: 0,
            batch: None,
            ready: VecDeque::new(),
            emitted: 0,
            clock: i64::MIN,
            streaming_token,
            duplicate_share: cfg.duplicate_share,
            batch_share: cfg.batch_share,
            retry_share: cfg.webhook_retry_share,
            bad_share: cfg.bad_share,
            truth: GroundTruth::default(),
        }
    }

    fn push(&mut self, at: i64, item: Item) {
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            at,
            seq: self.seq,
            item,
        }));
    }

    /// Queue one logical audit event that happened at `at_ms`.
    pub fn audit(&mut self, body: &mut AuditBody, at_ms: i64, rng: &mut ChaCha8Rng) {
        let json = serde_json::to_vec(body).expect("audit body serializes");
        let key = Some(body.author_id.to_string());
        let event_type = body.event_type;
        if rng.random_bool(self.duplicate_share) {
            // Stream-only events get a new random id per dispatch; saved ones keep their id.
            let dup = match body.id {
                AuditId::Stream(_) => {
                    body.id = AuditId::Stream(uuid(rng));
                    serde_json::to_vec(body).expect("audit body serializes")
                }
                AuditId::Saved(_) => json.clone(),
            };
            let at = at_ms + rng.random_range(1_000..30_000);
            self.push(
                at,
                Item::Audit {
                    event_type,
                    key: key.clone(),
                    json: dup,
                    logical: false,
                },
            );
        }
        if rng.random_bool(self.bad_share) {
            let (payload, reason) = poison_audit(&json, rng);
            let headers = self.audit_headers(Some(event_type));
            let at = at_ms + rng.random_range(0..1_000);
            self.push(
                at,
                Item::Bad {
                    source: SourceKind::AuditStream,
                    key: key.clone(),
                    headers,
                    payload,
                    reason,
                },
            );
        }
        let at = at_ms + delay(rng, 20, 400, 4_000);
        self.push(
            at,
            Item::Audit {
                event_type,
                key,
                json,
                logical: true,
            },
        );
    }

    /// Queue one logical webhook delivery (`X-Gitlab-Event` = `event`) for `at_ms`.
    pub fn webhook(
        &mut self,
        event: &'static str,
        key: Option<String>,
        json: Vec<u8>,
        at_ms: i64,
        rng: &mut ChaCha8Rng,
    ) {
        let idem = uuid(rng);
        let event_uuid = uuid(rng);
        let headers = |rng: &mut ChaCha8Rng| {
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("User-Agent".to_string(), "GitLab/18.5.1".to_string()),
                ("X-Gitlab-Event".to_string(), event.to_string()),
                ("X-Gitlab-Webhook-UUID".to_string(), uuid(rng)),
                (
                    "X-Gitlab-Instance".to_string(),
                    super::gitlab::INSTANCE.to_string(),
                ),
                ("X-Gitlab-Event-UUID".to_string(), event_uuid.clone()),
                ("Idempotency-Key".to_string(), idem.clone()),
            ]
        };
        let first = at_ms + delay(rng, 100, 1_500, 5_000);
        if rng.random_bool(self.retry_share) {
            // GitLab retries when the receiver timed out or failed: same key, new request UUID.
            let h = headers(rng);
            let at = first + rng.random_range(5_000..60_000);
            self.push(
                at,
                Item::Webhook {
                    headers: h,
                    key: key.clone(),
                    json: json.clone(),
                    logical: false,
                },
            );
        }
        if rng.random_bool(self.bad_share) {
            let cut = rng.random_range(1..json.len());
            let h = headers(rng);
            let at = at_ms + rng.random_range(0..1_000);
            let payload = json[..cut].to_vec();
            self.push(
                at,
                Item::Bad {
                    source: SourceKind::Webhook,
                    key: key.clone(),
                    headers: h,
                    payload,
                    reason: "invalid_json",
                },
            );
        }
        let h = headers(rng);
        self.push(
            first,
            Item::Webhook {
                headers: h,
                key,
                json,
                logical: true,
            },
        );
    }

    fn audit_headers(&self, event_type: Option<&str>) -> Vec<(String, String)> {
        let mut h = Vec::with_capacity(3);
        if let Some(t) = event_type {
            h.push(("X-Gitlab-Audit-Event-Type".to_string(), t.to_string()));
        }
        h.push((
            "X-Gitlab-Event-Streaming-Token".to_string(),
            self.streaming_token.clone(),
        ));
        h.push((
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ));
        h
    }

    /// Release every record delivered before `bound` (nothing earlier can still be queued).
    pub fn drain_before(&mut self, bound: i64, rng: &mut ChaCha8Rng) {
        while self.heap.peek().is_some_and(|p| p.0.at < bound) {
            let Reverse(p) = self.heap.pop().expect("peeked");
            self.deliver(p, rng);
        }
    }

    pub fn drain_all(&mut self, rng: &mut ChaCha8Rng) {
        self.drain_before(i64::MAX, rng);
        self.flush_batch(self.clock);
    }

    pub fn pop_ready(&mut self) -> Option<SimMessage> {
        self.ready.pop_front()
    }

    fn emit(&mut self, msg: SimMessage) {
        match msg.source {
            SourceKind::AuditStream => self.truth.audit_messages += 1,
            SourceKind::Webhook => self.truth.webhook_messages += 1,
        }
        self.emitted += 1;
        self.ready.push_back(msg);
    }

    fn deliver(&mut self, p: Pending, rng: &mut ChaCha8Rng) {
        // The batch timer fires before anything delivered later, keeping timestamps sorted.
        if let Some(deadline) = self.batch.as_ref().map(|b| b.first_at + BATCH_MAX_WAIT_MS)
            && p.at > deadline
        {
            self.flush_batch(deadline);
        }
        self.clock = p.at;
        match p.item {
            Item::Audit {
                event_type,
                key,
                json,
                logical,
            } => {
                if logical {
                    self.truth.distinct_audit_events += 1;
                }
                if self.batch.is_none() && rng.random_bool(self.batch_share) {
                    let size = rng.random_range(2..=20);
                    self.batch = Some(Batch {
                        first_at: p.at,
                        size,
                        elements: Vec::new(),
                        bad: Vec::new(),
                    });
                }
                if let Some(b) = self.batch.as_mut() {
                    if rng.random_bool(self.bad_share) {
                        let (payload, reason) = poison_object(&json, rng);
                        b.bad.push((b.elements.len(), reason));
                        b.elements.push(payload);
                    }
                    b.elements.push(json);
                    if b.elements.len() >= b.size {
                        self.flush_batch(p.at);
                    }
                } else {
                    let headers = self.audit_headers(Some(event_type));
                    self.emit(SimMessage {
                        source: SourceKind::AuditStream,
                        key,
                        headers,
                        payload: json,
                        timestamp_ms: p.at,
                    });
                }
            }
            Item::Webhook {
                headers,
                key,
                json,
                logical,
            } => {
                if logical {
                    self.truth.distinct_webhooks += 1;
                }
                self.emit(SimMessage {
                    source: SourceKind::Webhook,
                    key,
                    headers,
                    payload: json,
                    timestamp_ms: p.at,
                });
            }
            Item::Bad {
                source,
                key,
                headers,
                payload,
                reason,
            } => {
                let index = self.emitted;
                self.truth.bad_messages.push(BadMessageTruth {
                    index,
                    element: None,
                    source,
                    reason: reason.to_string(),
                });
                self.emit(SimMessage {
                    source,
                    key,
                    headers,
                    payload,
                    timestamp_ms: p.at,
                });
            }
        }
    }

    /// Emits the open batch as one array delivered at `at`. A batch cut by the timer may
    /// hold a single event; it is still sent as an array.
    fn flush_batch(&mut self, at: i64) {
        let Some(b) = self.batch.take() else { return };
        let index = self.emitted;
        for (element, reason) in b.bad {
            let reason = reason.to_string();
            self.truth.bad_messages.push(BadMessageTruth {
                index,
                element: Some(element),
                source: SourceKind::AuditStream,
                reason,
            });
        }
        let mut payload =
            Vec::with_capacity(b.elements.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
        payload.push(b'[');
        for (i, e) in b.elements.iter().enumerate() {
            if i > 0 {
                payload.push(b',');
            }
            payload.extend_from_slice(e);
        }
        payload.push(b']');
        // Batched mode omits the per-event type header; the batch mixes authors, so no key.
        let headers = self.audit_headers(None);
        self.emit(SimMessage {
            source: SourceKind::AuditStream,
            key: None,
            headers,
            payload,
            timestamp_ms: at,
        });
    }
}

/// Latency `lo..hi` ms, with a 5% tail of up to `tail` ms extra (slow worker, retry).
fn delay(rng: &mut ChaCha8Rng, lo: i64, hi: i64, tail: i64) -> i64 {
    let base = rng.random_range(lo..hi);
    if rng.random_bool(0.05) {
        base + rng.random_range(0..tail)
    } else {
        base
    }
}

/// A whole-message poison derived from a real body (so it looks like a corrupted delivery).
fn poison_audit(json: &[u8], rng: &mut ChaCha8Rng) -> (Vec<u8>, &'static str) {
    match rng.random_range(0..10) {
        0 | 1 => (
            json[..rng.random_range(1..json.len())].to_vec(),
            "invalid_json",
        ),
        2 => {
            // Not UTF-8 at all: exercises the byte-exact NDJSON fallback.
            let mut v = vec![0xff, 0xfe];
            v.extend_from_slice(&json[..json.len() / 2]);
            (v, "invalid_json")
        }
        3 | 4 => {
            let scalars: [&[u8]; 3] = [b"42", b"\"user_authenticated_using_job_token\"", b"true"];
            (scalars[rng.random_range(0..3)].to_vec(), "not_an_object")
        }
        _ => poison_object(json, rng),
    }
}

/// A JSON object that fails validation: no `created_at`, a non-time `created_at`, or an
/// object where `author_id` must be an integer.
fn poison_object(json: &[u8], rng: &mut ChaCha8Rng) -> (Vec<u8>, &'static str) {
    let mut v: Value = serde_json::from_slice(json).expect("generated body is JSON");
    let obj = v.as_object_mut().expect("generated body is an object");
    let reason = match rng.random_range(0..3) {
        0 => {
            obj.remove("created_at");
            "missing_field"
        }
        1 => {
            obj.insert(
                "created_at".into(),
                Value::String("yesterday afternoon".into()),
            );
            "wrong_type"
        }
        _ => {
            let id = obj.get("author_id").cloned().unwrap_or(Value::Null);
            obj.insert("author_id".into(), serde_json::json!({ "id": id }));
            "wrong_type"
        }
    };
    (serde_json::to_vec(&v).expect("value serializes"), reason)
}
