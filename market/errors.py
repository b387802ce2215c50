"""Every error the market domain raises, each naming the field at fault.

One hierarchy under :class:`MarketError` (itself a
:class:`~supervision.errors.CrankError`). Each subclass's docstring is its
default reason; the raise site may give a more precise one. The message always
reads ``"<field>: <reason>"`` and the field is also kept as ``error.field``, so
HTTP and CLI layers can answer ``{"field": ..., "error": ...}`` without parsing.

Field names are the JSON keys of :mod:`market.json_forms` (``price_atoms``,
``pay_account``...), or a dotted path for nested values.
"""

from __future__ import annotations

from supervision.errors import CrankError

__all__ = [
    "AccountFrozen",
    "BadBase58",
    "BadSignature",
    "CancelExpired",
    "DuplicateClientOrderId",
    "DuplicateOrder",
    "InsufficientDelegation",
    "InsufficientFunds",
    "InvalidFeePolicy",
    "InvalidField",
    "InvalidMarket",
    "InvalidPrice",
    "InvalidSize",
    "InvalidTokenAccount",
    "MalformedJson",
    "MarketError",
    "MissingField",
    "NumberOutOfRange",
    "OrderExpired",
    "OrderNotInBook",
    "UnknownField",
    "UnknownMarket",
    "WrongAccount",
    "WrongAccountMint",
    "WrongAccountOwner",
    "WrongDelegate",
    "WrongFieldType",
    "WrongMarket",
    "WrongSigner",
]


class MarketError(CrankError):
    """the value is invalid."""

    def __init__(self, field: str, reason: str | None = None) -> None:
        self.field = field
        self.reason = reason if reason is not None else _default_reason(type(self))
        super().__init__(f"{field}: {self.reason}")


def _default_reason(cls: type) -> str:
    lines = (cls.__doc__ or "").strip().splitlines()
    return lines[0] if lines else cls.__name__


# -- values that cannot be represented at all (construction, JSON) -----------


class InvalidField(MarketError):
    """the value is not allowed here."""


class NumberOutOfRange(InvalidField):
    """the number is outside the allowed range."""


class InvalidMarket(InvalidField):
    """the market definition is invalid."""


class MalformedJson(InvalidField):
    """the JSON document is malformed."""


class MissingField(MalformedJson):
    """the field is required but missing."""


class UnknownField(MalformedJson):
    """the field is not part of this document."""


class WrongFieldType(MalformedJson):
    """the field has the wrong JSON type."""


class BadBase58(MalformedJson):
    """the value is not valid base58 of the right length."""


# -- orders and cancels checked against markets, time and signatures ---------


class UnknownMarket(MarketError):
    """no such market."""


class InvalidPrice(MarketError):
    """the price must be a positive multiple of the market's tick size."""


class InvalidSize(MarketError):
    """the size must be a positive multiple of the market's lot size."""


class OrderExpired(MarketError):
    """the order has expired."""


class CancelExpired(MarketError):
    """the cancel request's timestamp is outside the accepted window."""


class BadSignature(MarketError):
    """the signature does not verify against the maker's key."""


class DuplicateClientOrderId(MarketError):
    """the maker already has an order with this client order id."""


class WrongSigner(MarketError):
    """the signer is not the one this field requires."""


# -- token accounts and funding ------------------------------------------------


class InvalidTokenAccount(MarketError):
    """the account is not an initialized SPL Token account."""


class WrongAccount(MarketError):
    """the token account is not the one the order names."""


class WrongAccountMint(MarketError):
    """the token account holds the wrong mint for this side of the order."""


class WrongAccountOwner(MarketError):
    """the token account is not owned by the order's maker."""


class AccountFrozen(MarketError):
    """the token account is frozen."""


class WrongDelegate(MarketError):
    """the token account's delegate is not the market's settlement authority."""


class InsufficientFunds(MarketError):
    """the token account's balance does not cover what the order still owes."""


class InsufficientDelegation(MarketError):
    """the delegated amount does not cover what the order still owes."""


# -- books ----------------------------------------------------------------------


class WrongMarket(MarketError):
    """the order belongs to another market."""


class DuplicateOrder(MarketError):
    """the order is already in the book."""


class OrderNotInBook(MarketError):
    """the order is not in the book."""


# -- settlement fees --------------------------------------------------------------


class InvalidFeePolicy(MarketError):
    """the priority fee policy is invalid."""
