#!/usr/bin/env python3
"""Baseline: the Kafka -> ClickHouse consumer an organisation would write itself.

One row per GitLab audit event into a table shaped like tokentrail's `audit_events`
(schemas/clickhouse/0001_audit_events.sql), with the same normalization subset:

* the streaming body is one JSON object, or a JSON array of objects (batched mode);
* dedup key: saved events (integer or digit-string GitLab `id`) -> `saved:<id>`;
  stream-only events (UUID or missing `id`) -> `content:<sha256 of the canonical JSON of the
  object without "id">` (keys sorted, compact), as src/normalize/dedup.rs does;
* the generic fields, with the `details` fallbacks GitLab also writes, and a port of
  tokentrail's actor classification;
* unusable messages/elements are counted and skipped (a real deployment would dead-letter
  them; the harness publishes without poison, so none occur in the benchmark).

Batching: up to --batch-rows rows or --batch-ms since the first row of the batch, then one
INSERT, then a synchronous offset commit (at-least-once: offsets are committed only after
ClickHouse acknowledged the insert). Transient insert failures are retried with capped
backoff. Two ways to insert (--protocol):

* `http` (default): INSERT ... FORMAT JSONEachRow over HTTP, rows serialized by orjson;
* `native`: clickhouse-driver over ClickHouse's native TCP protocol (column blocks), the
  careful home-made consumer of issue 19, run with --batch-rows 50000. Uncompressed: on
  loopback LZ4 only adds CPU on both sides (and needs the lz4 and clickhouse-cityhash wheels).

Why not clickhouse-connect: its client setup reads `system.settings.readonly`, a column
ClickHouse 18.16 lacks ("Code: 47 ... Unknown identifier: readonly"), so no client can be
built against the local server. The HTTP interface with urllib3 and JSONEachRow (serialized
by orjson, a C extension) is what one would fall back to, and is not slower.

With --exit-at-eof the consumer stops once every assigned partition reached its end and the
last batch is committed, then prints a JSON summary (rows, seconds, CPU, peak RSS) on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import resource
import sys
import time
from datetime import datetime, timezone
from urllib.parse import urlencode

import orjson
import urllib3
from confluent_kafka import Consumer, KafkaError, KafkaException

COLUMNS = (
    "dedup_key", "id", "stream_only", "event_type", "author_id", "author_name",
    "author_class", "actor_kind", "entity_id", "entity_type", "entity_path", "target_id",
    "target_type", "target_details", "ip_address", "created_at_ms", "details",
    "kafka_topic", "kafka_partition", "kafka_offset", "ingested_at_ms",
)
UUID_RE = re.compile(
    r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
BOT_RE = re.compile(r"^(project|group)_\d+_bot(?:$|_|\d)")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SORTED = orjson.OPT_SORT_KEYS


class Unusable(Exception):
    """The message or element cannot be normalized."""


def _get(obj, key):
    v = obj.get(key)
    return None if v is None else v


def _text(obj, details, key):
    v = _get(obj, key)
    if v is None and details is not None:
        v = _get(details, key)
        return "" if v is None or isinstance(v, (dict, list)) else str(v)
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise Unusable(f"{key}: wrong type")


def _id(v, key):
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise Unusable(f"{key}: wrong type")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    raise Unusable(f"{key}: wrong type")


def _loose_id(v):
    try:
        return _id(v, "")
    except Unusable:
        return None


def _created_at_ms(v):
    if not isinstance(v, str):
        raise Unusable("created_at: missing or wrong type")
    s = v.strip()
    if s.endswith(" UTC"):
        s = s[:-4] + "+00:00"
    try:
        t = datetime.fromisoformat(s)
    except ValueError as e:
        raise Unusable(f"created_at: {e}") from None
    if t.tzinfo is None:
        raise Unusable("created_at: no time zone")
    return (t - EPOCH) // _MS


_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc) - EPOCH


def _actor_kind(author_id, name, username, author_class):
    if author_class:
        short = author_class.rsplit("::", 1)[-1]
        kind = {
            "DeployToken": "deploy_token", "DeployTokenAuthor": "deploy_token",
            "DeployKey": "deploy_key", "DeployKeyAuthor": "deploy_key",
            "UnauthenticatedAuthor": "unauthenticated", "ServiceAccount": "service_account",
        }.get(short)
        if kind:
            return kind
    if author_id in (-1, -2, -3):
        return ("unauthenticated", "deploy_token", "deploy_key")[-author_id - 1]
    if " on behalf of @" in name:
        return "service_account"
    for candidate in (username, name):
        if isinstance(candidate, str):
            c = candidate.strip()
            m = BOT_RE.match(c)
            if m:
                return "project_bot" if m.group(1) == "project" else "group_bot"
            if c.startswith("service_account_"):
                return "service_account"
    return "human" if author_id > 0 else "unknown"


def audit_row(obj, header_event_type, topic, partition, offset, now_ms):
    details = obj.get("details")
    if details is not None and not isinstance(details, dict):
        raise Unusable("details: wrong type")
    created_at_ms = _created_at_ms(obj.get("created_at"))
    event_type = next(
        (s.strip() for s in (
            obj.get("event_type"), header_event_type,
            details.get("event_name") if details else None,
        ) if isinstance(s, str) and s.strip()),
        None,
    )
    if event_type is None:
        raise Unusable("event_type: missing")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str, type(None))):
        raise Unusable("id: wrong type")
    id_text = "" if raw_id is None else str(raw_id)
    saved = None
    if isinstance(raw_id, int):
        saved = str(raw_id)
    elif isinstance(raw_id, str):
        s = raw_id.strip()
        if s and s.isascii() and s.isdigit() and not UUID_RE.match(s):
            saved = s.lstrip("0") or "0"
    if saved is not None:
        dedup_key = "saved:" + saved
    else:
        body = {k: v for k, v in obj.items() if k != "id"}
        dedup_key = "content:" + hashlib.sha256(orjson.dumps(body, option=SORTED)).hexdigest()
    author_id = _id(obj.get("author_id"), "author_id") or 0
    author_name = _text(obj, details, "author_name")
    entity_id = _id(obj.get("entity_id"), "entity_id")
    entity_type = _text(obj, None, "entity_type")
    for key, scope in (("project_id", "Project"), ("group_id", "Group"), ("user_id", "User")):
        scoped = _id(obj.get(key), key)
        if entity_id is None and scoped is not None:
            entity_id = scoped
            entity_type = entity_type or scope
    target_id = _id(obj.get("target_id"), "target_id")
    if target_id is None and details:
        target_id = _loose_id(details.get("target_id"))
    author_class = (details or {}).get("author_class") or obj.get("author_class")
    author_class = author_class if isinstance(author_class, str) and author_class else None
    username = (details or {}).get("author_username") or obj.get("author_username")
    return {
        "dedup_key": dedup_key,
        "id": id_text,
        "stream_only": 0 if saved is not None else 1,
        "event_type": event_type,
        "author_id": author_id,
        "author_name": author_name,
        "author_class": author_class or "",
        "actor_kind": _actor_kind(author_id, author_name, username, author_class),
        "entity_id": entity_id,
        "entity_type": entity_type,
        "entity_path": _text(obj, details, "entity_path"),
        "target_id": target_id,
        "target_type": _text(obj, details, "target_type"),
        "target_details": _text(obj, details, "target_details"),
        "ip_address": _text(obj, details, "ip_address"),
        "created_at_ms": created_at_ms,
        "details": orjson.dumps(details, option=SORTED).decode() if details else "{}",
        "kafka_topic": topic,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "ingested_at_ms": now_ms,
    }


def rows_of(msg, now_ms):
    """Rows of one Kafka message; raises Unusable for a message that yields nothing."""
    try:
        body = orjson.loads(msg.value() or b"")
    except orjson.JSONDecodeError as e:
        raise Unusable(f"invalid JSON: {e}") from None
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if isinstance(body, dict):
        header = None
        for k, v in msg.headers() or ():
            if k == "X-Gitlab-Audit-Event-Type" and v:
                header = v.decode("utf-8", "replace")
        return [audit_row(body, header, topic, partition, offset, now_ms)], 0
    if isinstance(body, list) and body:
        rows, bad = [], 0
        for item in body:
            try:
                if not isinstance(item, dict):
                    raise Unusable("array element is not an object")
                rows.append(audit_row(item, None, topic, partition, offset, now_ms))
            except Unusable:
                bad += 1
        return rows, bad
    raise Unusable("not an object or a non-empty array")


class ClickHouseNative:
    """INSERT over the native protocol (clickhouse-driver): rows go as column blocks."""

    def __init__(self, host, port, database, table, timeout_s):
        from clickhouse_driver import Client  # only this mode needs it

        self.client = Client(host=host, port=port, database=database,
                             send_receive_timeout=timeout_s, compression=False)
        self.query = f"INSERT INTO {database}.{table} ({', '.join(COLUMNS)}) VALUES"

    def insert(self, rows):
        data = [tuple(r[c] for c in COLUMNS) for r in rows]
        backoff = 0.2
        for attempt in range(20):
            try:
                self.client.execute(self.query, data)
                return
            except (OSError, EOFError) as e:  # connection trouble: the driver reconnects
                err = str(e)
            print(f"insert attempt {attempt + 1} failed, retrying: {err}", file=sys.stderr)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        raise RuntimeError("ClickHouse insert kept failing")


class ClickHouse:
    def __init__(self, url, database, table, timeout_s):
        self.http = urllib3.PoolManager(
            maxsize=1, timeout=urllib3.Timeout(connect=5, read=timeout_s),
            retries=False,
        )
        query = f"INSERT INTO {database}.{table} ({', '.join(COLUMNS)}) FORMAT JSONEachRow"
        self.insert_url = f"{url.rstrip('/')}/?{urlencode({'query': query})}"

    def insert(self, rows):
        body = b"\n".join(orjson.dumps(r) for r in rows)
        backoff = 0.2
        for attempt in range(20):
            try:
                r = self.http.request("POST", self.insert_url, body=body)
                if r.status == 200:
                    return
                err = f"HTTP {r.status}: {r.data[:300]!r}"
                if r.status < 500:
                    raise RuntimeError(f"ClickHouse refused the insert: {err}")
            except urllib3.exceptions.HTTPError as e:
                err = str(e)
            print(f"insert attempt {attempt + 1} failed, retrying: {err}", file=sys.stderr)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        raise RuntimeError("ClickHouse insert kept failing")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--clickhouse-url", required=True)
    p.add_argument("--protocol", choices=("http", "native"), default="http")
    p.add_argument("--native-port", type=int, default=9000,
                   help="ClickHouse's native TCP port (--protocol native; the host is the URL's)")
    p.add_argument("--database", required=True)
    p.add_argument("--table", default="audit_events")
    p.add_argument("--batch-rows", type=int, default=10_000)
    p.add_argument("--batch-ms", type=int, default=1_000)
    p.add_argument("--exit-at-eof", action="store_true")
    p.add_argument("--max-seconds", type=float, default=3600)
    a = p.parse_args()

    if a.protocol == "native":
        host = urllib3.util.parse_url(a.clickhouse_url).host
        ch = ClickHouseNative(host, a.native_port, a.database, a.table, timeout_s=30)
    else:
        ch = ClickHouse(a.clickhouse_url, a.database, a.table, timeout_s=30)
    assigned, at_eof = set(), set()

    def on_assign(consumer, parts):
        assigned.update((t.topic, t.partition) for t in parts)

    def on_revoke(consumer, parts):
        for t in parts:
            assigned.discard((t.topic, t.partition))
            at_eof.discard((t.topic, t.partition))

    consumer = Consumer({
        "bootstrap.servers": a.brokers,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 8 * 1024 * 1024,
        "queued.max.messages.kbytes": 65536,
    })
    consumer.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)

    started = time.monotonic()
    rows, batch_started = [], None
    total_rows = total_msgs = total_bytes = unusable = batches = 0

    def flush():
        nonlocal rows, batch_started, total_rows, batches
        if rows:
            ch.insert(rows)
            total_rows += len(rows)
            batches += 1
        # Offsets of everything consumed so far (all of it is now in ClickHouse).
        if total_msgs:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                if e.args[0].code() != KafkaError._NO_OFFSET:
                    raise
        rows, batch_started = [], None

    try:
        while time.monotonic() - started < a.max_seconds:
            msgs = consumer.consume(num_messages=1000, timeout=0.1)
            now_ms = time.time_ns() // 1_000_000
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add((m.topic(), m.partition()))
                        continue
                    raise KafkaException(err)
                at_eof.discard((m.topic(), m.partition()))
                total_msgs += 1
                total_bytes += len(m.value() or b"")
                try:
                    new, bad = rows_of(m, now_ms)
                    rows.extend(new)
                    unusable += bad
                except Unusable:
                    unusable += 1
                if batch_started is None and rows:
                    batch_started = time.monotonic()
            if rows and (len(rows) >= a.batch_rows
                         or time.monotonic() - batch_started >= a.batch_ms / 1000):
                flush()
            if a.exit_at_eof and assigned and at_eof >= assigned and total_msgs:
                flush()
                break
    finally:
        elapsed = time.monotonic() - started
        consumer.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(orjson.dumps({
        "messages": total_msgs, "rows": total_rows, "payload_bytes": total_bytes,
        "unusable": unusable, "batches": batches, "seconds": round(elapsed, 3),
        "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
        "peak_rss_kb": ru.ru_maxrss,
    }).decode())


if __name__ == "__main__":
    main()
