"""Reading the JSON forms of domain objects, each error naming the field.

JSON forms are for people and HTTP, never for signing: keys are the Python
attribute names, pubkeys and signatures are base58 strings, u64 integers are JSON
integers or decimal strings (``"18446744073709551615"``: JavaScript numbers lose
precision past 2^53, see docs/API.md), never floats. A document with a missing field, an
unknown field, a value of the wrong type, bad base58 or an out-of-range number
is refused with the matching :class:`~market.errors.MalformedJson` subclass,
whose ``field`` is the key.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TypeVar

from solders.pubkey import Pubkey
from solders.signature import Signature

from market.errors import BadBase58, MissingField, UnknownField, WrongFieldType
from market.fields import check_u64

__all__ = ["JsonDict", "JsonFields"]

JsonDict = dict[str, str | int]
_Key = TypeVar("_Key", Pubkey, Signature)
# re.ASCII: \d would take other scripts' digits; int() takes " 5" and "1_0".
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)


class JsonFields:
    """The fields of one JSON object (as ``json.loads`` returns it), read by type."""

    def __init__(self, document: object, name: str, keys: Collection[str]) -> None:
        """``name`` is the field reported if ``document`` is not an object at all;
        ``keys`` are the fields it may have (any other is refused)."""
        if not isinstance(document, Mapping):
            raise WrongFieldType(name, f"must be a JSON object, got {_json_type(document)}")
        unknown = sorted(str(key) for key in document if key not in keys)
        if unknown:
            raise UnknownField(unknown[0], f"is not a field of {name}")
        self._document = document

    def raw(self, key: str) -> object:
        if key not in self._document:
            raise MissingField(key)
        return self._document[key]

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise WrongFieldType(key, f"must be a string, got {_json_type(value)}")
        return value

    def u64(self, key: str) -> int:
        """A u64 as a JSON integer or a decimal string of ASCII digits (no sign, no
        spaces, no leading zeros but ``"0"``)."""
        value = self.raw(key)
        if isinstance(value, str):
            if not _DECIMAL.fullmatch(value):
                raise WrongFieldType(
                    key,
                    "must be an integer or a string of decimal digits (no sign, no "
                    "leading zeros, at most 20 digits)",
                )
            return check_u64(key, int(value))
        if isinstance(value, bool) or not isinstance(value, int):
            raise WrongFieldType(
                key, f"must be an integer or a decimal string, got {_json_type(value)}"
            )
        return check_u64(key, value)

    def pubkey(self, key: str) -> Pubkey:
        text = self.text(key)
        try:
            parsed = Pubkey.from_string(text)
        except ValueError:
            raise BadBase58(key, "must be a base58 public key (32 bytes)") from None
        return _canonical(key, text, parsed)

    def optional_pubkey(self, key: str, default: Pubkey) -> Pubkey:
        """:meth:`pubkey`, or ``default`` when the field is absent."""
        return self.pubkey(key) if key in self._document else default

    def signature(self, key: str) -> Signature:
        text = self.text(key)
        try:
            parsed = Signature.from_string(text)
        except ValueError:
            raise BadBase58(key, "must be a base58 signature (64 bytes)") from None
        return _canonical(key, text, parsed)


def _canonical(key: str, text: str, parsed: _Key) -> _Key:
    # One value, one spelling: ids and keys are compared and stored as text.
    if str(parsed) != text:
        raise BadBase58(key, "is not in canonical base58")
    return parsed


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__
