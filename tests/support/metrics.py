"""Reading `GET /metrics` the way Prometheus does: prometheus_client's own text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition page, by (sample name, sorted label pairs)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when the page does not have it (a counter never incremented)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


class Scrapes:
    """Two scrapes of a metrics page, before and after something happened."""

    def __init__(self, before: str, after: str) -> None:
        self.before, self.after = before, after

    def delta(self, name: str, **labels: str) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)
