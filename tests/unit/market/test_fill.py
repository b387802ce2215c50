"""What settling fills moves, account by account (market.net_balance_changes): the
one computation the chaos audit, the demo's summary and storage's reconciliation use."""

from __future__ import annotations

import dataclasses

from market import Fill, Side, net_balance_changes
from tests.unit.market.factories import pubkey


def _fill(sequence: int, base_atoms: int, quote_atoms: int) -> Fill:
    return Fill(
        fill_id=f"f{sequence}",
        market_id="m",
        sequence=sequence,
        maker_order_id="mo",
        taker_order_id="to",
        taker_side=Side.BUY,
        price_atoms=quote_atoms // base_atoms,
        base_atoms=base_atoms,
        quote_atoms=quote_atoms,
        buyer=pubkey(1),
        seller=pubkey(2),
        buyer_pay_account=pubkey(11),
        buyer_receive_account=pubkey(12),
        seller_pay_account=pubkey(21),
        seller_receive_account=pubkey(22),
    )


def test_the_seller_pays_base_to_the_buyer_and_the_buyer_pays_quote_to_the_seller() -> None:
    """Two fills add up per account; paid out is negative."""
    changes = net_balance_changes([_fill(1, 10, 500), _fill(2, 5, 250)])
    assert changes == {
        str(pubkey(21)): -15,
        str(pubkey(12)): 15,
        str(pubkey(11)): -750,
        str(pubkey(22)): 750,
    }


def test_movements_that_cancel_out_are_kept_with_zero() -> None:
    """A maker trading with itself across two fills nets 0 on the account, listed."""
    there = _fill(1, 10, 500)
    back = dataclasses.replace(
        there,
        fill_id="f2",
        sequence=2,
        seller_pay_account=there.buyer_receive_account,
        buyer_receive_account=there.seller_pay_account,
    )
    changes = net_balance_changes([there, back])
    assert changes[str(pubkey(21))] == 0 and changes[str(pubkey(12))] == 0
    assert net_balance_changes([]) == {}
