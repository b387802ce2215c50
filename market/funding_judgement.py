"""OrderMonitor's funding judgement, pure: which of a market's orders their pay
accounts really cover, judged together.

Orders on the same pay account are judged in arrival order (``claims`` in arrival
order where several share a time: the sort is stable, by time stored); each one
must be covered on top of what the earlier *funded* ones on that account still
owe (an unfunded order is not in the book and owes nothing).

Each order is judged inside :func:`supervision.working_on` its order, so an order
whose judgement raises (a bug it triggers) is named to the actor's failure hook,
which quarantines it at its second failure instead of crash-looping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from market import funding
from market.errors import MarketError
from market.market import Market
from market.order import Order
from market.token_account import TokenAccount
from supervision import InputKey, working_on

__all__ = ["FundingClaim", "judge_funding"]


class FundingClaim(NamedTuple):
    """One order to judge: its id, terms, what is left of it, and when it was stored."""

    order_id: str
    order: Order
    remaining_atoms: int
    created_at: datetime


def judge_funding(
    market: Market,
    claims: Iterable[FundingClaim],
    accounts: Mapping[str, TokenAccount | MarketError],
) -> dict[str, MarketError | None]:
    """Each order's funding problem (None: funded), by order id (module docstring).

    ``accounts`` maps pay account addresses to the decoded account, or to why it
    could not be read; an order whose account was not read is left out."""
    verdicts: dict[str, MarketError | None] = {}
    committed: dict[tuple[str, str], int] = {}
    for claim in sorted(claims, key=lambda item: item.created_at):
        order = claim.order
        account = accounts.get(str(order.pay_account))
        if account is None:
            continue  # not read in this batch
        if isinstance(account, MarketError):
            verdicts[claim.order_id] = account
            continue
        key = (str(order.maker), str(order.pay_account))
        with working_on(InputKey("order", claim.order_id, market.market_id)):
            problem = funding.funding_problem(
                market, order, account, claim.remaining_atoms, committed.get(key, 0)
            )
        verdicts[claim.order_id] = problem
        if problem is None:
            owed = funding.owed_atoms(market, order, claim.remaining_atoms)
            committed[key] = committed.get(key, 0) + owed
    return verdicts
