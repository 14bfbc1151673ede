#!/usr/bin/python3
"""Drives prometheus_client's Pushgateway functions for pushgate's e2e tests.

usage: python_client.py GATEWAY_URL STEP
  STEP push     push_to_gateway (PUT): counter, gauge, histogram, summary
  STEP pushadd  pushadd_to_gateway (POST): a new value for the gauge only
  STEP delete   delete_from_gateway (DELETE)
  STEP scrape   GET /metrics with Accept-Encoding: gzip, as scrapers do: the
                body must be one gzip member that gzip.decompress reads and
                that parses, with the series of the push step

Run with PROMETHEUS_DISABLE_CREATED_SERIES=true so that no *_created series
(whose values are wall-clock times) are pushed.
"""
import gzip
import sys
import urllib.request
import zlib

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.parser import text_string_to_metric_families

JOB = "pyjob"
# "/" makes the client base64-encode the value; the space is sent as "+"
# (quote_plus), which a gateway takes literally because it is in the path.
GROUPING = {"instance": "py-host", "path": "/var/tmp", "team": "a b"}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    gateway, step = sys.argv[1], sys.argv[2]
    registry = CollectorRegistry()
    if step == "push":
        requests = Counter("py_requests", "Requests handled.", ["code"], registry=registry)
        requests.labels("200").inc(3)
        requests.labels("500").inc()
        last = Gauge("py_last_success_unixtime", "Last success.", registry=registry)
        last.set(1234)
        duration = Histogram("py_duration_seconds", "Duration.", buckets=(0.1, 1), registry=registry)
        duration.observe(0.05)
        duration.observe(0.5)
        size = Summary("py_size_bytes", "Size.", registry=registry)
        size.observe(10)
        push_to_gateway(gateway, job=JOB, registry=registry, grouping_key=GROUPING)
    elif step == "pushadd":
        last = Gauge("py_last_success_unixtime", "Last success.", registry=registry)
        last.set(5678)
        pushadd_to_gateway(gateway, job=JOB, registry=registry, grouping_key=GROUPING)
    elif step == "delete":
        delete_from_gateway(gateway, job=JOB, grouping_key=GROUPING)
    elif step == "scrape":
        scrape(gateway)
    else:
        sys.exit("unknown step " + step)


def scrape(gateway):
    req = urllib.request.Request(
        gateway.rstrip("/") + "/metrics",
        headers={"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "gzip"},
    )
    with urllib.request.urlopen(req) as resp:
        encoding = resp.headers.get("Content-Encoding")
        body = resp.read()
    if encoding != "gzip":
        sys.exit("Content-Encoding %r, want gzip" % encoding)
    text = gzip.decompress(body).decode("utf-8")
    # gzip.decompress reads any number of members: check there is one.
    d = zlib.decompressobj(wbits=31)
    if d.decompress(body) != text.encode("utf-8") or not d.eof or d.unused_data:
        sys.exit("the body is not exactly one gzip member")
    samples = {
        (s.name, s.labels.get("code")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    for code, want in (("200", 3), ("500", 1)):
        if samples.get(("py_requests_total", code)) != want:
            sys.exit("py_requests_total{code=%r} is %r, want %r" % (code, samples.get(("py_requests_total", code)), want))


if __name__ == "__main__":
    main()
