"""A small simulated internet on loopback for tests, benchmarks and `monitor demo`.

Everything binds and connects to 127.0.0.0/8 only and never uses the system resolver.
"""

from monitor.lab.certs import LabPKI
from monitor.lab.dns_server import Behavior, LabDNSServer
from monitor.lab.hostile import HostileKind, HostileServer
from monitor.lab.internet import LabSite, SimulatedInternet
from monitor.lab.loopback import BlackholeListener, free_port_pair, require_loopback
from monitor.lab.presets import KAZAKHSTAN_STAYS_UP, kazakhstan, synthetic
from monitor.lab.topology import HostKind, LabHost, LabNetwork, network_prefix
from monitor.lab.web import LabWebServer, Mode

__all__ = [
    "KAZAKHSTAN_STAYS_UP",
    "Behavior",
    "BlackholeListener",
    "HostKind",
    "HostileKind",
    "HostileServer",
    "LabDNSServer",
    "LabHost",
    "LabNetwork",
    "LabPKI",
    "LabSite",
    "LabWebServer",
    "Mode",
    "SimulatedInternet",
    "free_port_pair",
    "kazakhstan",
    "network_prefix",
    "require_loopback",
    "synthetic",
]
