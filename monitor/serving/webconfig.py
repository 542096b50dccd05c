"""`--web-config FILE`: TLS and basic auth for the web endpoints, in the spirit of Prometheus'
exporter-toolkit web configuration.

```yaml
tls_server_config:
  cert_file: /etc/monitor/tls.crt
  key_file: /etc/monitor/tls.key
basic_auth_users:
  prometheus: $2b$12$...   # a bcrypt hash, never the password itself
```
Make a hash with `python3 -c 'import bcrypt; print(bcrypt.hashpw(b"pw", bcrypt.gensalt()).decode())'`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.catalog.problems import ConfigError, ConfigProblem
from monitor.catalog.yaml_lines import YAMLLoadError, load_located
from monitor.serving.basic_auth import BCRYPT_HASH, BasicAuthUsers

__all__ = ["WebConfig", "load_web_config"]

# Endpoints a load balancer or container runtime checks without credentials; they reveal nothing.
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TLSServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cert_file: str
    key_file: str
    min_version: str = Field(default="TLS12", pattern="^TLS1[23]$")


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_server_config is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = (
            ssl.TLSVersion.TLSv1_3
            if self.tls_server_config.min_version == "TLS13"
            else ssl.TLSVersion.TLSv1_2
        )
        context.load_cert_chain(self.tls_server_config.cert_file, self.tls_server_config.key_file)
        return context

    def auth_middleware(self) -> Middleware | None:
        if not self.basic_auth_users:
            return None
        users = BasicAuthUsers(self.basic_auth_users)

        @web.middleware
        async def require_basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in UNAUTHENTICATED_PATHS or await users.allowed(
                request.headers.get("Authorization", "")
            ):
                return await handler(request)
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="shutdown-monitor"'})

        return require_basic_auth


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        located = load_located(path.read_text(encoding="utf-8"))
        config = WebConfig.model_validate(located.data or {})
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), 1, "file", f"cannot read: {exc}")]) from None
    except YAMLLoadError as exc:
        raise ConfigError([ConfigProblem(str(path), exc.line, "yaml", exc.message)]) from None
    except ValidationError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    located.line_of(tuple(error["loc"])),
                    ".".join(str(part) for part in error["loc"]) or "document",
                    error["msg"].removeprefix("Value error, "),
                )
                for error in exc.errors()
            ]
        ) from None
    not_hashes = [user for user, hashed in config.basic_auth_users.items() if not BCRYPT_HASH.match(hashed)]
    if not_hashes:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    located.line_of(("basic_auth_users", user)),
                    f"basic_auth_users.{user}",
                    "must be a bcrypt hash ($2b$12$ and 53 more characters), never the password itself",
                )
                for user in not_hashes
            ]
        )
    try:
        config.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    located.line_of(("tls_server_config",)),
                    "tls_server_config",
                    f"cannot load the certificate: {exc}",
                )
            ]
        ) from None
    return config
