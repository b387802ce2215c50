"""URLs as they may appear in logs and in the state the router exposes.

RPC provider URLs often carry an API key: in the userinfo, the query string,
or the path (``/v2/<key>``). Only the scheme, host and port are shown.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["mask_url"]


def mask_url(url: str) -> str:
    """``url`` with its userinfo, path, query and fragment replaced by ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparsable url>"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    if parts.path not in ("", "/"):
        shown += "/***"
    if parts.query or parts.fragment:
        shown += "?***"
    return shown
