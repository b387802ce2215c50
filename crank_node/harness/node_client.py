"""Talking to a running node's HTTP API from the command line (``crank-node order``).

The base URL comes from ``--url`` (``HOST:PORT`` or a URL), else the node's
public intake address ``CRANK_INTAKE_ADDR``, else 127.0.0.1:8786 (the operator
listener, ``CRANK_HTTP_ADDR``, serves /health and /status, not orders). Every
answer is read as JSON: a 2xx is the result, a 4xx the node's refusal
(``{"error": {"field", "reason", "type"}}``); anything else (no connection, a
timeout, a 5xx, an answer that is not a node's) is :class:`NodeUnreachable`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from supervision.errors import CrankError

INTAKE_ADDR_ENV = "CRANK_INTAKE_ADDR"
DEFAULT_INTAKE_ADDR = (
    "127.0.0.1:8786"  # crank_node.node.settings.DEFAULT_INTAKE_ADDR (a test keeps them equal)
)

__all__ = ["NodeAnswer", "NodeClient", "NodeRefused", "NodeUnreachable", "node_base_url"]

DEFAULT_TIMEOUT_S = 15.0


class NodeUnreachable(CrankError):
    """The node cannot be reached, or cannot take the request now."""


class NodeRefused(CrankError):
    """The node refused the request."""

    def __init__(self, status: int, field: str | None, reason: str, kind: str) -> None:
        self.status = status
        self.field = field
        self.reason = reason
        self.kind = kind
        self.document = {"error": {"field": field, "reason": reason, "type": kind}}
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True)
class NodeAnswer:
    status: int
    document: Any


def node_base_url(url: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The node's base URL, without a trailing slash."""
    given = url or environ.get(INTAKE_ADDR_ENV) or DEFAULT_INTAKE_ADDR
    if "://" not in given:
        given = f"http://{given}"
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https"):
        raise NodeUnreachable(f"--url {given!r}: use http://HOST:PORT")
    return given.rstrip("/")


class NodeClient:
    """JSON requests to one node; each returns the answer or raises a refusal."""

    def __init__(
        self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.token = token  # the operator listener's bearer token, when it is off loopback

    def get(self, path: str) -> NodeAnswer:
        return self.request("GET", path)

    def post(self, path: str, document: Any) -> NodeAnswer:
        return self.request("POST", path, document)

    def request(self, method: str, path: str, document: Any = None) -> NodeAnswer:
        """Raises :class:`NodeRefused` for a 4xx refusal, :class:`NodeUnreachable` otherwise."""
        url = f"{self.base_url}{path}"
        data = None if document is None else json.dumps(document).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310  (http(s) only: node_base_url)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310  (as above)
                return NodeAnswer(response.status, _json(url, response.read()))
        except urllib.error.HTTPError as error:
            with error:
                raise _refusal(url, error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise NodeUnreachable(
                f"nothing answers at {url} ({reason}); is the node running, and is the "
                f"address its --intake-addr / {INTAKE_ADDR_ENV} (orders) or its --http-addr "
                f"(health, status)?"
            ) from None


def _json(url: str, raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NodeUnreachable(f"{url} did not answer with JSON: is this a crank node?") from None


def _refusal(url: str, status: int, raw: bytes) -> CrankError:
    try:
        error = json.loads(raw.decode("utf-8"))["error"]
        field, reason, kind = error.get("field"), str(error["reason"]), str(error["type"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return NodeUnreachable(f"{url} answered HTTP {status}: is this a crank node's address?")
    if status >= 500:
        return NodeUnreachable(f"the node cannot take the request now: {reason}")
    return NodeRefused(status, field if isinstance(field, str) else None, reason, kind)
