"""What a settlement pays, on a real localnet (ticking slots) with a real RpcRouter,
BlockhashActor and database (issue 16, "Fees and compute"): the priority price from
the recent fees of the accounts it writes, the hard per-settlement cap, the
compute-unit limit from simulation, out-of-compute landings retried, and preflight.

Run with ``-s`` to see the lamports per settlement and the limit against the units
used, before (the fixed 40,000 limit) and after (the simulated one).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from solana.rpc.commitment import Confirmed
from solders.compute_budget import set_compute_unit_price
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

import market as domain
from actors.settlement import AttemptsExpired
from localnet.faults import Faults
from tests.integration.actors.test_settlement_actor import (
    FAST,
    Settler,
    _expected_after,
    _revoke_seller,
    _send_and_wait,
    settler,
)
from tests.integration.market.conftest import Trade
from tests.support.chain_audit import settled_fill_ids, signature_status_exists

__all__ = ["settler"]  # the fixture, imported to be used here

# Slower slots than test_settlement_actor's: recent fees cover the last 150 slots,
# which must still hold the transactions a test lands before the actor starts.
SLOT_MS = 40


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(180)]


PERCENTILE = replace(
    FAST,
    fee_policy=domain.PercentilePriorityFee(
        100, cap_micro_lamports=10**9, floor_micro_lamports=1_000
    ),
    fee_refresh_s=0.1,
)


def _land_with_price(
    trade: Trade, owner: Keypair, account: Pubkey, mint: Pubkey, decimals: int, price: int
) -> None:
    """A transaction that writes ``account`` (a 0-token transfer to itself by its owner)
    at compute-unit ``price``: the chain's recent fees for that account now include it."""
    instruction = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=account,
            mint=mint,
            dest=account,
            owner=owner.pubkey(),
            amount=0,
            decimals=decimals,
        )
    )
    blockhash = trade.rpc(lambda rpc: rpc.get_latest_blockhash(Confirmed)).value.blockhash
    transaction = Transaction.new_signed_with_payer(
        [set_compute_unit_price(price), instruction], owner.pubkey(), [owner], blockhash
    )
    _send_and_wait(trade.rpc, bytes(transaction))


def _busy_elsewhere(trade: Trade, price: int) -> None:
    """A fee spike on accounts the settlement does not touch."""
    other = trade.localnet.fixtures.fund_wallet()
    mint = trade.localnet.fixtures.create_mint(decimals=0)
    account = trade.localnet.fixtures.fund_token_account(other.pubkey(), mint, 1)
    _land_with_price(trade, other, account, mint.address, 0, price)


def _lamports(trade: Trade, address: Pubkey) -> int:
    return int(trade.rpc(lambda rpc: rpc.get_balance(address, Confirmed)).value)


def _fees_of_attempts(settler: Settler) -> list[domain.TransactionFee]:
    return [domain.transaction_fee(a.raw_transaction) for a in settler.attempts()]


def test_the_price_follows_the_recent_fees_of_the_accounts_the_settlement_writes(
    settler: Settler,
) -> None:
    """The seller's pay account saw a 40,000 micro-lamport transaction and the rest of
    the chain a 5,000,000 one: with the p100 policy the settlement bids 40,000 (what
    its own accounts need), not the unrelated spike, and lands."""
    trade = settler.trade
    _busy_elsewhere(trade, 5_000_000)
    _land_with_price(
        trade,
        trade.seller,
        trade.accounts["seller_base"],
        trade.market.base_mint,
        trade.market.base_decimals,
        40_000,
    )

    settler.start(PERCENTILE)
    finished = settler.finished()

    assert finished.outcome == "confirmed"
    (fee,) = _fees_of_attempts(settler)
    assert fee.price_micro_lamports == 40_000
    assert finished.fee == fee
    state = settler.state().fees[trade.market.market_id]
    assert state["price_micro_lamports"] == 40_000 and state["fee_accounts"] == 4


def test_the_hard_cap_binds_whatever_a_fee_spike_says_and_is_counted(settler: Settler) -> None:
    """The buyer's pay account saw a 10,000,000 micro-lamport spike; with a hard cap of
    50 lamports per settlement the attempt bids at most 50 lamports' worth at its limit,
    the binding is counted, and the settlement still lands."""
    trade = settler.trade
    _land_with_price(
        trade,
        trade.buyer,
        trade.accounts["buyer_quote"],
        trade.market.quote_mint,
        trade.market.quote_decimals,
        10_000_000,
    )
    capped = replace(PERCENTILE, max_priority_fee_lamports=50)

    settler.start(capped)
    finished = settler.finished()

    assert finished.outcome == "confirmed"
    (fee,) = _fees_of_attempts(settler)
    assert fee.priority_lamports <= 50
    assert fee.price_micro_lamports == 50 * 1_000_000 // fee.compute_unit_limit
    state = settler.state()
    assert state.fee_cap_bound >= 1
    assert state.fees[trade.market.market_id]["wanted_micro_lamports"] == 10_000_000


def test_the_limit_comes_from_simulation_and_cuts_the_fee_before_and_after(
    settler: Settler,
) -> None:
    """The first attempt (sent before the simulation answers, then dropped) asks for the
    default 40,000 units; the simulation of the market's settlement says what it uses,
    and the next attempt asks for that plus the margin. Prints lamports per settlement
    and limit against units used, before and after."""
    trade = settler.trade
    trade.localnet.set_faults(0, Faults(drop_sends=True))
    settings = replace(FAST, fee_policy=domain.FixedPriorityFee(10_000))
    before = trade.balances()

    settler.start(settings)
    settler.recorder.wait_for(
        lambda events: any(isinstance(e, AttemptsExpired) for e in events), timeout_s=60
    )
    trade.localnet.clear_faults(0)
    finished = settler.finished(timeout_s=60)

    assert finished.outcome == "confirmed"
    first, *_, last = _fees_of_attempts(settler)
    fees = settler.state().fees[trade.market.market_id]
    used = fees["units_simulated"]
    expected = domain.compute_unit_limit_for(used, margin_percent=20, margin_units=1_000)
    assert first.compute_unit_limit == 40_000
    assert last.compute_unit_limit == fees["compute_unit_limit"] == expected < 40_000
    assert finished.fee == last
    assert trade.balances() == _expected_after(trade, before)
    print(  # the report's figures
        f"\nCU used (simulated): {used}\n"
        f"before: limit {first.compute_unit_limit}, {first.lamports} lamports "
        f"({first.base_lamports} + {first.priority_lamports} priority) at 10,000 uL/CU\n"
        f"after:  limit {last.compute_unit_limit}, {last.lamports} lamports "
        f"({last.base_lamports} + {last.priority_lamports} priority) at 10,000 uL/CU"
    )


def test_an_attempt_that_runs_out_of_compute_units_is_retried_not_failed(
    settler: Settler,
) -> None:
    """With a default limit far too low (600 units), the first attempt lands failed
    with ComputationalBudgetExceeded: it moved nothing and is dead, so it is marked
    expired (dead), a new attempt follows with a limit simulated (or at least doubled), and the
    settlement is confirmed once, both legs moved."""
    trade = settler.trade
    before = trade.balances()
    settings = replace(FAST, compute_unit_limit=600)

    settler.start(settings)
    finished = settler.finished(timeout_s=60)

    assert finished.outcome == "confirmed"
    attempts = settler.attempts()
    assert attempts[0].state == "expired" and attempts[-1].state == "confirmed"
    assert domain.transaction_fee(attempts[0].raw_transaction).compute_unit_limit == 600
    assert trade.balances() == _expected_after(trade, before)
    assert settled_fill_ids(trade.localnet.url, trade.authority.pubkey()) == {trade.fill.fill_id: 1}
    spent = [e for e in settler.recorder.snapshot() if isinstance(e, AttemptsExpired)]
    assert spent and spent[0].out_of_compute == (attempts[0].signature,)
    assert spent[0].fee_lamports > 0


def test_a_revoked_delegate_is_refused_at_preflight_and_failed_without_paying_a_fee(
    settler: Settler,
) -> None:
    """The seller revoked the delegate: the attempt's first send is refused at preflight
    (OwnerMismatch on the base leg), so it is not resent and never reaches the chain;
    once its blockhash has expired (provably dead) the settlement is failed with the
    preflight's reason, the seller's order set aside, and the fee payer paid nothing."""
    trade = settler.trade
    _revoke_seller(trade)
    payer_before = _lamports(trade, trade.fee_payer.pubkey())
    before = trade.balances()

    settler.start(replace(FAST, preflight="first_send"))
    finished = settler.finished(timeout_s=60)

    assert finished.outcome == "failed" and finished.leg == "base"
    assert finished.reason is not None and "refused at preflight" in finished.reason
    (attempt,) = settler.attempts()
    assert attempt.state == "expired"
    assert not signature_status_exists(trade.localnet.url, attempt.signature)
    assert _lamports(trade, trade.fee_payer.pubkey()) == payer_before
    assert trade.balances() == before
    assert settler.state().preflight_refused == 1
