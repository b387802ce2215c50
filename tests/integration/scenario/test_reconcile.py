"""reconcile against a real localnet and database: fills recorded with record_match,
settled on chain with the settlement transaction market/ builds, and marked through
the SettlementActor's storage functions (claim, record_attempt, mark_attempt,
confirm_settlement / fail_settlement)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import storage
from crank_node.harness.order_flow import OrderFlow
from crank_node.harness.scenario import BalanceMismatch, Scenario, build_scenario, reconcile
from localnet import LocalnetServer
from market import Book, Fill, build_settlement_transaction, match

from .conftest import BASE_ATOMS, QUOTE_ATOMS, rpc

LEASE_TTL_S = 60.0
CLAIM_TTL_S = 60.0


@dataclass
class Desk:
    """A stored scenario, its markets' leases, and fills matched from an order flow."""

    localnet: LocalnetServer
    engine: Engine
    scenario: Scenario
    before: dict[str, int]
    fills: list[Fill] = field(default_factory=list)

    def trade_until(self, fill_count: int) -> None:
        """Store and match flow orders (as MatchActor would) until ``fill_count`` fills
        are recorded, each match write under its market's lease."""
        leases = storage.LeaseStore(self.engine, "scenario-test")
        held = {}
        for market in self.scenario.markets:
            lease = leases.acquire(storage.market_key(market.market_id), LEASE_TTL_S)
            assert lease is not None
            held[market.market_id] = lease
        books = {m.market_id: Book.empty(m) for m in self.scenario.markets}
        flow = OrderFlow(self.scenario, seed=5, now_s=time.time, cross_probability=0.8)
        for signed in flow.take(500):
            storage.store_order(self.engine, signed)
            market_id = signed.order.market_id
            result = match(books[market_id], signed.order, now_s=int(time.time()))
            books[market_id] = result.book
            if result.fills:
                assert storage.record_match_result(self.engine, held[market_id], result).recorded
                self.fills.extend(result.fills)
            if len(self.fills) >= fill_count:
                return
        pytest.fail(f"only {len(self.fills)} fills from 500 orders")

    def claim(self, fill: Fill) -> tuple[storage.ClaimQueue, storage.Claim]:
        queue = storage.settlement_queue(self.engine, "scenario-test")
        claims = queue.claim(len(self.fills), CLAIM_TTL_S)
        for claim in claims:
            if claim.row_id != fill.fill_id:
                queue.release(claim)
        (mine,) = [claim for claim in claims if claim.row_id == fill.fill_id]
        return queue, mine

    def land(self, fill: Fill, *, confirm: bool = True) -> None:
        """Write the attempt ahead, send it, produce the slots that confirm it, and (unless
        told not to) confirm the settlement in the database."""
        queue, claim = self.claim(fill)
        latest = rpc(self.localnet.url, lambda c: c.get_latest_blockhash(Processed)).value
        settlement = build_settlement_transaction(
            self.scenario.market(fill.market_id),
            fill,
            fee_payer=self.scenario.fee_payer,
            settlement_authority=self.scenario.settlement_authority,
            recent_blockhash=latest.blockhash,
            compute_unit_price_micro_lamports=1_000,
        )
        signature = str(settlement.signature)
        storage.record_attempt(
            queue,
            claim,
            signature=signature,
            raw_transaction=settlement.raw_bytes,
            blockhash=str(latest.blockhash),
            last_valid_block_height=latest.last_valid_block_height,
        )
        options = TxOpts(preflight_commitment=Processed)
        rpc(self.localnet.url, lambda c: c.send_raw_transaction(settlement.raw_bytes, options))
        storage.mark_attempt(queue, claim, signature, "sent")
        self.localnet.advance_slots(self.localnet.config.confirmation_depth_slots + 1)
        statuses = rpc(
            self.localnet.url, lambda c: c.get_signature_statuses([settlement.signature])
        )
        status = statuses.value[0]
        assert status is not None and status.err is None
        if confirm:
            storage.confirm_settlement(queue, claim, signature, status.slot)

    def fail(self, fill: Fill) -> None:
        """Give the settlement up without sending anything (nothing moves)."""
        queue, claim = self.claim(fill)
        storage.fail_settlement(queue, claim, "given up by the test")


@pytest.fixture
def desk(localnet: LocalnetServer, engine: Engine) -> Iterator[Desk]:
    scenario = build_scenario(
        localnet,
        engine,
        settlement_authority=Keypair(),
        fee_payer=Keypair(),
        base_atoms_per_maker=BASE_ATOMS,
        quote_atoms_per_maker=QUOTE_ATOMS,
        seed=11,
    )
    desk = Desk(localnet, engine, scenario, scenario.snapshot_balances(localnet))
    desk.trade_until(4)
    yield desk


def test_reconcile_is_ok_after_confirmed_settlements_and_lists_the_unsettled_fills(
    desk: Desk,
) -> None:
    """Two fills settled on chain and confirmed, one failed, the rest pending: the balances
    read back over JSON-RPC equal before + the two confirmed fills, and the failed and
    pending fills are listed by status, moving nothing."""
    first, second, given_up, *pending = desk.fills
    desk.land(first)
    desk.land(second)
    desk.fail(given_up)
    after = desk.scenario.snapshot_balances(desk.localnet.url)

    report = reconcile(desk.before, after, desk.engine)

    assert report.ok, report.to_json()
    assert after != desk.before
    assert report.settled_fill_count == 2
    assert report.accounts_checked == len(desk.scenario.token_accounts())
    assert dict(report.unsettled_fill_ids) == {
        "failed": (given_up.fill_id,),
        "pending": tuple(sorted(fill.fill_id for fill in pending)),
    }
    assert json.loads(json.dumps(report.to_json()))["ok"] is True
    assert reconcile(desk.before, after, [first, second]).ok
    assert not reconcile(desk.before, after, [first]).ok


def test_a_balance_that_is_off_is_reported_with_what_was_expected(desk: Desk) -> None:
    """One atom too many in one account is a mismatch naming that account, the expected
    balance and the actual one; every other account still reconciles."""
    desk.land(desk.fills[0])
    after = desk.scenario.snapshot_balances(desk.localnet)
    account = str(desk.fills[0].buyer_receive_account)
    tampered = {**after, account: after[account] + 1}

    report = reconcile(desk.before, tampered, desk.engine)

    assert not report.ok
    assert report.mismatches == (BalanceMismatch(account, after[account], after[account] + 1),)
    assert report.to_json()["mismatches"] == [
        {"account": account, "expected": after[account], "actual": after[account] + 1}
    ]


def test_a_settlement_that_landed_but_is_not_confirmed_in_the_database_is_a_mismatch(
    desk: Desk,
) -> None:
    """A settlement on chain whose row still says submitted counts for nothing: its four
    accounts mismatch, and the fill is listed as submitted."""
    fill = desk.fills[0]
    desk.land(fill, confirm=False)
    after = desk.scenario.snapshot_balances(desk.localnet)

    report = reconcile(desk.before, after, desk.engine)

    legs = {
        str(fill.seller_pay_account): -fill.base_atoms,
        str(fill.buyer_receive_account): fill.base_atoms,
        str(fill.buyer_pay_account): -fill.quote_atoms,
        str(fill.seller_receive_account): fill.quote_atoms,
    }
    moved = {
        m.account: m.actual - m.expected
        for m in report.mismatches
        if m.actual is not None and m.expected is not None
    }
    assert len(report.mismatches) == 4 and moved == legs
    assert report.unsettled_fill_ids["submitted"] == (fill.fill_id,)


def test_an_account_missing_from_a_snapshot_is_a_mismatch(desk: Desk) -> None:
    """An account in one snapshot and not the other cannot be checked: it is reported."""
    after = desk.scenario.snapshot_balances(desk.localnet)
    missing = str(desk.scenario.token_accounts()[0])
    del after[missing]

    report = reconcile(desk.before, after, desk.engine)

    assert report.mismatches == (BalanceMismatch(missing, desk.before[missing], None),)
