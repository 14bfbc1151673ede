#!/usr/bin/python3
"""Drives prometheus_client's Pushgateway functions for pushgate's e2e tests.

usage: python_client.py GATEWAY_URL STEP
  STEP push     push_to_gateway (PUT): counter, gauge, histogram, summary
  STEP pushadd  pushadd_to_gateway (POST): a new value for the gauge only
  STEP delete   delete_from_gateway (DELETE)

Run with PROMETHEUS_DISABLE_CREATED_SERIES=true so that no *_created series
(whose values are wall-clock times) are pushed.
"""
import sys

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
    else:
        sys.exit("unknown step " + step)


if __name__ == "__main__":
    main()
