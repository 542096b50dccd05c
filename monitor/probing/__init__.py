"""One target in, one ProbeResult out, on schedule: the failure taxonomy, the layers, the PROBES table."""
