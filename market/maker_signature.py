"""What every maker-signed message shares (orders, cancels, cancel-alls): a field that
must hold a signature, and signing as the maker the message names."""

from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from market.errors import InvalidField, WrongSigner

__all__ = ["check_signature", "sign_as_maker"]


def check_signature(value: object) -> None:
    """Raise InvalidField (field ``signature``) unless ``value`` is a Signature."""
    if not isinstance(value, Signature):
        raise InvalidField("signature", f"must be a Signature, got {type(value).__name__}")


def sign_as_maker(keypair: Keypair, maker: Pubkey, message: bytes, whose: str) -> Signature:
    """``keypair``'s signature of ``message``; WrongSigner (field ``maker``) unless it is
    ``maker``'s keypair. ``whose`` names the message in the error ("the order's")."""
    if keypair.pubkey() != maker:
        raise WrongSigner("maker", f"the keypair is {keypair.pubkey()}, {whose} maker is {maker}")
    return keypair.sign_message(message)
