# Internet-shutdown monitor: `docker build -t shutdown-monitor .`
# Mount the catalog at /etc/monitor/targets.yaml; the outage journal lives in /var/lib/monitor.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package, then drop the sources: only the installed copy runs.
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY monitor/ monitor/
RUN pip install --no-cache-dir . \
    && cd / && rm -rf /tmp/src

RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/monitor --shell /usr/sbin/nologin monitor \
    && mkdir -p /etc/monitor /var/lib/monitor \
    && chown 10001:10001 /var/lib/monitor

WORKDIR /var/lib/monitor
USER 10001:10001

EXPOSE 9143
# /var/lib/monitor must exist and belong to 10001 before this line: a new named volume
# copies that ownership. /etc/monitor is not a volume: the catalog is mounted there read-only,
# and a volume would add a writable anonymous one to a read-only container.
VOLUME ["/var/lib/monitor"]

# slim has no curl; a non-2xx answer raises, so the exit status is 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9143/healthz', timeout=4)"]

ENTRYPOINT ["monitor"]
CMD ["run", "--config", "/etc/monitor/targets.yaml", "--listen", "0.0.0.0:9143", "--state", "/var/lib/monitor/journal.sqlite"]
