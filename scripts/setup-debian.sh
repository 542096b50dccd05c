#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: the real Prometheus, promtool, Alertmanager and
# blackbox_exporter, wrk for load, iproute2 for network namespaces, util-linux for prlimit, chromium and
# chromium-driver for the status page's browser test, docker.io and debootstrap for the image test,
# traceroute beside ours in bench/paths.py. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Install without starting the packaged services: tests start their own on free loopback ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  prometheus prometheus-alertmanager prometheus-blackbox-exporter wrk iproute2 util-linux \
  chromium chromium-driver docker.io debootstrap traceroute >/dev/null
