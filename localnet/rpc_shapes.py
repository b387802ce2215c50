"""Answers shaped as an Agave node serializes them, where solders' types differ.

solders serializes every optional field of a transaction's status meta, as
``null`` when absent. Agave wraps those fields in ``OptionSerializer`` with
``skip_serializing_if``: an absent ``returnData``, ``costUnits`` or
``computeUnitsConsumed`` is left out, and ``loadedAddresses`` is always an
object (empty lists for a legacy transaction). Clients validate this strictly:
@solana/web3.js 1.x declares them ``optional(number())`` and
``optional(LoadedAddressesResult)``, so a ``null`` makes ``getTransaction``
throw.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["JsonAnswer", "node_meta", "node_result"]

# Fields Agave omits (``OptionSerializer::Skip``/``None``) rather than sending as null.
_SKIPPED_WHEN_ABSENT: Final = ("returnData", "costUnits", "computeUnitsConsumed")
_NO_LOADED_ADDRESSES: Final[dict[str, list[str]]] = {"writable": [], "readonly": []}


class JsonAnswer:
    """A result already in JSON form; the dispatcher serializes it with ``to_json``."""

    def __init__(self, result: Any) -> None:
        self._result = result

    @property
    def result(self) -> Any:
        return self._result

    def to_json(self) -> str:
        envelope = {"jsonrpc": "2.0", "result": self._result, "id": 0}
        return json.dumps(envelope, separators=(",", ":"))


def node_meta(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """``meta`` (solders' JSON) as Agave sends it: absent fields left out."""
    if meta is None:
        return None
    shaped = {
        key: value
        for key, value in meta.items()
        if not (key in _SKIPPED_WHEN_ABSENT and value is None)
    }
    if shaped.get("loadedAddresses") is None:
        shaped["loadedAddresses"] = dict(_NO_LOADED_ADDRESSES)
    return shaped


def node_result(solders_json: str) -> JsonAnswer:
    """The ``result`` of a solders transaction response, its meta shaped as Agave's."""
    result = json.loads(solders_json)["result"]
    if isinstance(result, dict) and "meta" in result:
        result["meta"] = node_meta(result["meta"])
    return JsonAnswer(result)
