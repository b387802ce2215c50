"""Positional JSON-RPC parameters, read the way a Solana node reads them.

Every failure is an :class:`RpcError` with code -32602 and a message worded
like the node's (serde's ``invalid type: ..., expected ...`` for shapes,
``Invalid param: ...`` for keys and hashes).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from typing import Any

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from localnet.base58 import b58decode
from localnet.commitment import ChainTip, Commitment
from localnet.rpc_errors import RpcError

__all__ = [
    "Config",
    "Params",
    "decode_bytes",
    "describe_json",
    "invalid_type",
    "parse_hash",
    "parse_pubkey",
    "parse_signature",
    "parse_u64",
]


def describe_json(value: object) -> str:
    """serde_json's ``Unexpected`` wording for a JSON value."""
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, int | float):
        kind = "integer" if isinstance(value, int) else "floating point"
        return f"{kind} `{value}`"
    return {type(None): "null", list: "sequence"}.get(type(value), "map")


def invalid_type(value: object, expected: str) -> RpcError:
    return RpcError.invalid_params(
        f"Invalid params: invalid type: {describe_json(value)}, expected {expected}."
    )


class Params:
    """The ``params`` array of one request."""

    def __init__(self, raw: object, *, required: int = 0, at_most: int = 2) -> None:
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise invalid_type(raw, "a sequence")
        if len(raw) < required:
            raise RpcError.invalid_params(
                f"Invalid params: invalid length {len(raw)}, expected at least {required}."
            )
        if len(raw) > at_most:
            raise RpcError.invalid_params(
                f"Invalid params: invalid length {len(raw)}, expected at most {at_most}."
            )
        self._values: list[Any] = raw

    def value(self, index: int) -> Any:
        return self._values[index] if index < len(self._values) else None

    def config(self, index: int) -> Config:
        raw = self.value(index)
        if raw is None:
            return Config({})
        if not isinstance(raw, dict):
            raise invalid_type(raw, "struct RpcConfig")
        return Config(raw)

    def pubkey(self, index: int) -> Pubkey:
        return parse_pubkey(self.value(index))

    def signature(self, index: int) -> Signature:
        return parse_signature(self.value(index))

    def u64(self, index: int) -> int:
        return parse_u64(self.value(index))

    def list_of(self, index: int, limit: int) -> list[Any]:
        raw = self.value(index)
        if not isinstance(raw, list):
            raise invalid_type(raw, "a sequence")
        if len(raw) > limit:
            raise RpcError.invalid_params(f"Too many inputs provided; max {limit}")
        return raw


class Config:
    """The configuration object of a request; ``null`` fields count as absent."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    def get(self, key: str) -> Any:
        return self._raw.get(key)

    def flag(self, key: str) -> bool:
        raw = self._raw.get(key)
        if raw is None:
            return False
        if not isinstance(raw, bool):
            raise invalid_type(raw, "a boolean")
        return raw

    def optional_u64(self, key: str) -> int | None:
        raw = self._raw.get(key)
        return None if raw is None else parse_u64(raw)

    def commitment(
        self, default: Commitment = Commitment.FINALIZED, key: str = "commitment"
    ) -> Commitment:
        raw = self._raw.get(key)
        if raw is None:
            return default
        if not isinstance(raw, str):
            raise invalid_type(raw, "a string")
        try:
            return Commitment.from_rpc_name(raw)
        except ValueError:
            raise RpcError.invalid_params(
                f"Invalid params: unknown variant `{raw}`, expected one of "
                "`processed`, `confirmed`, `finalized`."
            ) from None

    def context_slot(self, tip: ChainTip, commitment: Commitment) -> int:
        """The slot a read at ``commitment`` uses, checked against ``minContextSlot``."""
        slot = tip.slot(commitment)
        minimum = self.optional_u64("minContextSlot")
        if minimum is not None and slot < minimum:
            raise RpcError.min_context_slot_not_reached(slot)
        return slot

    def enum(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self._raw.get(key)
        if raw is None:
            return default
        if not isinstance(raw, str):
            raise invalid_type(raw, "a string")
        if raw not in allowed:
            choices = ", ".join(f"`{choice}`" for choice in allowed)
            raise RpcError.invalid_params(
                f"Invalid params: unsupported {key} `{raw}`: localnet supports {choices}."
            )
        return raw


def parse_u64(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 2**64:
        raise invalid_type(raw, "u64")
    return raw


def _decode_key(raw: object, size: int) -> bytes:
    if not isinstance(raw, str):
        raise invalid_type(raw, "a string")
    try:
        decoded = b58decode(raw)
    except ValueError:
        raise RpcError.invalid_params("Invalid param: Invalid") from None
    if len(decoded) != size:
        raise RpcError.invalid_params("Invalid param: WrongSize")
    return decoded


def parse_pubkey(raw: object) -> Pubkey:
    if isinstance(raw, str):
        # solders parses well-formed keys fast; the slow path only words the refusal.
        with contextlib.suppress(ValueError):
            return Pubkey.from_string(raw)
    return Pubkey.from_bytes(_decode_key(raw, 32))


def parse_signature(raw: object) -> Signature:
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return Signature.from_string(raw)
    return Signature.from_bytes(_decode_key(raw, 64))


def parse_hash(raw: object) -> Hash:
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return Hash.from_string(raw)
    return Hash.from_bytes(_decode_key(raw, 32))


def decode_bytes(raw: object, encoding: str) -> bytes:
    """Decode wire data; messages as in Agave's ``decode_and_deserialize``."""
    if not isinstance(raw, str):
        raise invalid_type(raw, "a string")
    if encoding == "base58":
        try:
            return b58decode(raw)
        except ValueError as error:
            raise RpcError.invalid_params(f"invalid base58 encoding: {error}") from None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RpcError.invalid_params(f"invalid base64 encoding: {error}") from None
