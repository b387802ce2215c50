"""Raw-socket HTTP for abuse tests: what urllib cannot send (a body never sent, a bad
Content-Length, headers a byte at a time) and answers read within a bound."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

READ_BOUND_S = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int, timeout_s: float = READ_BOUND_S) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` whose reads give up after ``timeout_s``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 response from ``sock`` (raises socket.timeout past the socket's bound)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body)


def exchange(port: int, raw: bytes, timeout_s: float = READ_BOUND_S) -> Answer:
    """Send ``raw`` on a new connection and read the answer."""
    with connect(port, timeout_s) as sock:
        sock.sendall(raw)
        return read_answer(sock)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A full POST with a JSON body and its Content-Length."""
    given = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return request_head("POST", path, {**given, **(headers or {})}) + body


def closed_within(sock: socket.socket, timeout_s: float) -> bool:
    """True if the server closes ``sock`` (EOF or reset) within ``timeout_s``; whatever
    the server writes before closing (an error answer) is read and ignored."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True
