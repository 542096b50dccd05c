"""ProbeResults in, outages out: hysteresis, the site/network/country/vantage analysis, the journal."""
