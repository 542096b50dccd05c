"""Internet-shutdown monitor: probes a country's key sites and exports Prometheus metrics."""

__version__ = "0.1.0"
