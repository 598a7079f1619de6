#!/usr/bin/env python3
"""Freshness probe for benches/e2e.sh: when does each Kafka message become queryable?

  probe.py watch --url URL --db DB --out FILE --stop FILE [--interval 0.1]
      Polls `SELECT kafka_partition, max(kafka_offset) FROM DB.audit_events GROUP BY
      kafka_partition` every --interval seconds and appends `unix_ms partition max_offset`
      when a partition's visible maximum moved. tokentrail writes each partition's rows in
      offset order, so every offset <= the maximum is visible at that time. Stops when the
      --stop file exists.

  probe.py freshness --brokers B --topic T --visible FILE [--since-ms MS]
      Reads T from the beginning (no consumer group), and for every message (partition,
      offset, Kafka timestamp = publish time) finds the first poll that saw it:
      freshness = visible_at - kafka_timestamp. Prints a JSON summary with p50/p90/p99/max.
      Messages never seen are counted as `unseen`. The poll interval (plus query time) is
      the resolution: each figure is late by at most that.
"""

from __future__ import annotations

import argparse
import bisect
import os
import sys
import time
from urllib.parse import urlencode

import orjson
import urllib3
from confluent_kafka import Consumer, KafkaError, TopicPartition


def watch(a):
    http = urllib3.PoolManager(maxsize=1, timeout=urllib3.Timeout(connect=2, read=10))
    query = (
        f"SELECT kafka_partition, max(kafka_offset) FROM {a.db}.audit_events "
        "GROUP BY kafka_partition FORMAT TabSeparated"
    )
    url = f"{a.url.rstrip('/')}/?{urlencode({'query': query})}"
    seen: dict[int, int] = {}
    polls = 0
    query_ms_total = 0.0
    with open(a.out, "w", buffering=1) as out:
        while not os.path.exists(a.stop):
            t0 = time.time()
            try:
                r = http.request("GET", url)
                body = r.data.decode() if r.status == 200 else ""
            except urllib3.exceptions.HTTPError:
                body = ""
            t1 = time.time()
            polls += 1
            query_ms_total += (t1 - t0) * 1000
            # Visible no later than the answer; attribute to the answer time (conservative).
            now_ms = int(t1 * 1000)
            for line in body.splitlines():
                p, o = line.split("\t")
                p, o = int(p), int(o)
                if o > seen.get(p, -1):
                    seen[p] = o
                    out.write(f"{now_ms} {p} {o}\n")
            time.sleep(max(0.0, a.interval - (time.time() - t0)))
    print(orjson.dumps({"polls": polls,
                        "mean_query_ms": round(query_ms_total / max(polls, 1), 1)}).decode(),
          file=sys.stderr)


def freshness(a):
    visible: dict[int, tuple[list[int], list[int]]] = {}
    with open(a.visible) as f:
        for line in f:
            t, p, o = (int(x) for x in line.split())
            offs, times = visible.setdefault(p, ([], []))
            offs.append(o)
            times.append(t)
    c = Consumer({
        "bootstrap.servers": a.brokers, "group.id": "probe-unused",
        "enable.auto.commit": False, "enable.partition.eof": True,
    })
    md = c.list_topics(a.topic, timeout=10).topics[a.topic]
    parts = sorted(md.partitions)
    ends = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(a.topic, p, 0) for p in parts])
    lat: list[int] = []
    unseen = 0
    done = {p for p in parts if ends[p] == 0}
    while len(done) < len(parts):
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done.add(m.partition())
                    continue
                raise SystemExit(str(m.error()))
            _, ts = m.timestamp()
            if ts < a.since_ms:
                continue
            offs, times = visible.get(m.partition(), ([], []))
            # First poll whose visible maximum reached this offset.
            i = bisect.bisect_left(offs, m.offset())
            if i == len(offs):
                unseen += 1
            else:
                lat.append(times[i] - ts)
    c.close()
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

    print(orjson.dumps({
        "messages": len(lat), "unseen": unseen,
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "max_ms": lat[-1] if lat else None,
    }).decode())


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--url", required=True)
    w.add_argument("--db", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--stop", required=True)
    w.add_argument("--interval", type=float, default=0.1)
    f = sub.add_parser("freshness")
    f.add_argument("--brokers", required=True)
    f.add_argument("--topic", required=True)
    f.add_argument("--visible", required=True)
    f.add_argument("--since-ms", type=int, default=0)
    a = p.parse_args()
    {"watch": watch, "freshness": freshness}[a.cmd](a)


if __name__ == "__main__":
    main()
