"""Cancels as tests store them directly in the database.

Intake stores with each cancelled order the maker's signed cancel
(``market.cancel_record``); the nodes check it when they read the order cancelled.
:func:`maker_cancel` is a real one, signed by the maker. :data:`UNCHECKED` is for
storage tests, which store a record as given (checking it is the reading node's
job, not storage's): no node ever reads an order cancelled with it.
"""

from __future__ import annotations

from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import storage
from market import CancelRequest, cancel_record, sign_cancel
from storage.authorization import cancel_refusal_of

__all__ = ["UNCHECKED", "assert_cancel_holds", "maker_cancel"]

UNCHECKED = '{"kind":"cancel","signed":{"note":"stored by a storage test, never checked"}}'


def maker_cancel(order_id: str, maker: Keypair, timestamp_s: int) -> str:
    """The record of ``maker``'s signed cancel of ``order_id`` at ``timestamp_s``."""
    return cancel_record(sign_cancel(CancelRequest(order_id, maker.pubkey(), timestamp_s), maker))


def assert_cancel_holds(engine: Engine, order_id: str) -> None:
    """``order_id`` is cancelled and the signed cancel stored with it holds."""
    stored = storage.get_order(engine, order_id)
    assert stored is not None and stored.status == "cancelled"
    assert stored.cancel_signed is not None
    refusal = cancel_refusal_of(stored)
    assert refusal is None, refusal
