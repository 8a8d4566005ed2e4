"""A stream scorer's counters on a Prometheus endpoint (``--metrics-port``).

The figures are read from the scorer's ``StreamStats`` when scraped, so counting costs
the scoring loop nothing, and the endpoint only exists when a port is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from forgeml.serving.stream import StreamScorer

COUNTERS = (
    ("scored", "Messages scored and published."),
    ("rows", "Rows scored."),
    ("dead_lettered", "Messages sent to the dead letter."),
    ("redelivered", "Messages received again after an earlier delivery."),
    ("retried", "Messages handed back after the model failed on them."),
    ("paused", "Times a full output stopped the scorer reading."),
    ("paused_seconds", "Seconds spent paused for a full output."),
    ("batches", "Batches published and acknowledged."),
    ("swaps", "Model swaps after the alias moved."),
)


class StreamCollector(Collector):
    def __init__(self, scorer: StreamScorer) -> None:
        self.scorer = scorer

    def collect(self) -> Iterator[Any]:
        stats = self.scorer.stats
        labels = [self.scorer.name or ""]
        for key, text in COUNTERS:
            family = CounterMetricFamily(f"forgeml_stream_{key}", text, labels=["scorer"])
            family.add_metric(labels, float(getattr(stats, key)))
            yield family
        model = GaugeMetricFamily(
            "forgeml_stream_model", "The model version scoring now.", labels=["scorer", "model"]
        )
        model.add_metric([*labels, stats.model], 1.0)
        yield model


def start_metrics(scorer: StreamScorer, port: int, host: str = "127.0.0.1") -> Any:
    """Serve the scorer's counters on ``host:port``; returns the server (shut it down)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StreamCollector(scorer))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
