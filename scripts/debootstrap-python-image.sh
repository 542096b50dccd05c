#!/usr/bin/env bash
# A stand-in for the python:3.11-slim base image, built from Debian bookworm by debootstrap and
# `docker import`ed under that tag, for machines that cannot pull from Docker Hub (offline,
# air-gapped or rate-limited): bookworm's python3 is 3.11, `python` and `pip` are there, the host's
# CA bundle is copied in (so pip works behind a proxy that the host trusts). Run as root:
#   scripts/debootstrap-python-image.sh [TAG] [CACHE_DIR]
# then `docker build .` as usual. The root filesystem is cached as a tarball in CACHE_DIR
# (default /var/cache/shutdown-monitor): later runs only import it. DOCKER_HOST is honoured;
# DEBIAN_MIRROR (default http://deb.debian.org/debian) picks the mirror.
set -euo pipefail
tag=${1:-python:3.11-slim}
cache=${2:-/var/cache/shutdown-monitor}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}
tarball="$cache/bookworm-python3-minbase.tar"
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED  # the image's pip installs into the image
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
"$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >/dev/null
echo "$tag"
