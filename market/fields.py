"""Checks shared by the domain's constructors: integer ranges, ids, key types.

Each check raises a :mod:`market.errors` error naming the field, so a value
that would not fit the canonical encoding can never be built.
"""

from __future__ import annotations

import re

from solders.pubkey import Pubkey

from market.errors import BadBase58, InvalidField, NumberOutOfRange

__all__ = [
    "MARKET_ID_BYTES",
    "U8_MAX",
    "U64_MAX",
    "check_market_id",
    "check_pubkey",
    "check_u8",
    "check_u64",
    "market_id_bytes",
    "order_id_bytes",
]

U8_MAX = 2**8 - 1
U64_MAX = 2**64 - 1
MARKET_ID_BYTES = 32
# Printable, unambiguous in URLs (GET /markets/{id}/book) and in lock keys (market:<id>).
_MARKET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def check_u64(field: str, value: object) -> int:
    """``value`` as an int in 0..2^64-1 (an unsigned 64-bit field of the encoding)."""
    return _check_int(field, value, U64_MAX)


def check_u8(field: str, value: object) -> int:
    """``value`` as an int in 0..255."""
    return _check_int(field, value, U8_MAX)


def _check_int(field: str, value: object, maximum: int) -> int:
    # bool is an int subclass; True as a price is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(field, f"must be an integer, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise NumberOutOfRange(field, f"must be between 0 and {maximum}, got {value}")
    return value


def check_pubkey(field: str, value: object) -> Pubkey:
    """``value`` itself, once known to be a solders ``Pubkey``."""
    if not isinstance(value, Pubkey):
        raise InvalidField(field, f"must be a Pubkey, got {type(value).__name__}")
    return value


def check_market_id(field: str, value: object) -> str:
    """A market id: 1 to 32 ASCII letters, digits, ``.``, ``_`` or ``-``, not starting
    with punctuation."""
    if not isinstance(value, str):
        raise InvalidField(field, f"must be a string, got {type(value).__name__}")
    if not _MARKET_ID.fullmatch(value):
        raise InvalidField(
            field,
            f"must be 1 to {MARKET_ID_BYTES} characters of A-Z a-z 0-9 . _ -, "
            f"starting with a letter or digit, got {value!r}",
        )
    return value


def market_id_bytes(market_id: str) -> bytes:
    """The market id's fixed-width form in encodings: ASCII, NUL-padded to 32 bytes."""
    return market_id.encode("ascii").ljust(MARKET_ID_BYTES, b"\0")


def order_id_bytes(field: str, order_id: object) -> bytes:
    """The 32 bytes an order id names; raises naming ``field`` if it is not one."""
    if not isinstance(order_id, str):
        raise InvalidField(field, f"must be a string, got {type(order_id).__name__}")
    # Pubkey parses any 32 bytes of base58 (no curve check) and, unlike Hash, raises
    # ValueError; the round trip refuses non-canonical spellings of one id.
    try:
        parsed = Pubkey.from_string(order_id)
    except ValueError:
        raise BadBase58(field, "must be the base58 of 32 bytes") from None
    if str(parsed) != order_id:
        raise BadBase58(field, "is not in canonical base58")
    return bytes(parsed)
