"""The ledger under the endpoints: slots, landing, history and genesis, without HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from solders.keypair import Keypair
from spl.token.constants import TOKEN_PROGRAM_ID

from localnet import Fixtures, LocalnetConfig, SubmitOutcome
from localnet.ledger import Ledger

from .chain import lamport_transfer

_opened: list[Ledger] = []


@pytest.fixture(autouse=True)
def _close_ledgers() -> Iterator[None]:
    """Every ledger a test made is closed after it (each runs LiteSVM on a thread of its own)."""
    yield
    while _opened:
        _opened.pop().close()


def manual_ledger(**options: int) -> Ledger:
    ledger = Ledger(LocalnetConfig(port=0, slot_ms=0, **options))
    _opened.append(ledger)
    return ledger


def ledger_with_fixtures(**options: int) -> tuple[Ledger, Fixtures]:
    ledger = manual_ledger(**options)
    return ledger, Fixtures(ledger)


def test_submitted_transactions_land_in_arrival_order_in_a_later_slot() -> None:
    """Queued now, they land together when the next slot is produced, indexed by arrival."""
    ledger, fixtures = ledger_with_fixtures()
    payer = fixtures.fund_wallet()
    blockhash = ledger.blockhash_at(ledger.slot).blockhash
    transactions = [
        lamport_transfer(payer, Keypair().pubkey(), 1_000_000 + n, blockhash) for n in range(3)
    ]
    outcomes = [ledger.submit(tx, signatures_verified=False) for tx in transactions]
    assert outcomes == [SubmitOutcome.QUEUED] * 3
    assert (
        ledger.submit(transactions[0], signatures_verified=False) is SubmitOutcome.ALREADY_PENDING
    )
    assert all(ledger.landed(tx.signatures[0]) is None for tx in transactions)
    ledger.advance_slots(1)
    landed = [ledger.landed(tx.signatures[0]) for tx in transactions]
    assert [(entry.slot, entry.index_in_slot) for entry in landed if entry] == [
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert ledger.submit(transactions[0], signatures_verified=False) is SubmitOutcome.ALREADY_LANDED


def test_a_forged_signature_sent_without_preflight_is_dropped_at_landing() -> None:
    """Unverified at the edge (skipPreflight), a bad signature is caught by the leader and dropped."""
    ledger, fixtures = ledger_with_fixtures()
    payer = fixtures.fund_wallet()
    good = lamport_transfer(payer, Keypair().pubkey(), 1_000_000, ledger.blockhash_at(0).blockhash)
    forged = type(good).populate(good.message, [Keypair().sign_message(b"not this")])
    ledger.submit(forged, signatures_verified=False)
    ledger.advance_slots(1)
    assert ledger.landed(forged.signatures[0]) is None


def test_old_state_is_read_from_history_including_closed_and_new_program_accounts() -> None:
    """program_accounts at an older slot shows accounts as they were, not as they are."""
    ledger, fixtures = ledger_with_fixtures()
    mint = fixtures.create_mint()
    ledger.advance_slots(2)
    before = {address for address, _ in ledger.program_accounts(TOKEN_PROGRAM_ID, ledger.slot)}
    account = fixtures.create_token_account(Keypair().pubkey(), mint)
    fixtures.mint_to(mint, account, 99)
    now = {address for address, _ in ledger.program_accounts(TOKEN_PROGRAM_ID, ledger.slot)}
    then = {address for address, _ in ledger.program_accounts(TOKEN_PROGRAM_ID, ledger.slot - 1)}
    assert now == before | {account}
    assert then == before
    assert ledger.account(account, ledger.slot - 1) is None


def test_history_is_pruned_past_the_retention_window_without_changing_answers() -> None:
    """Once older than retention, history is forgotten; reads at readable slots are unchanged."""
    ledger, fixtures = ledger_with_fixtures(state_retention_slots=40)
    payer = fixtures.fund_wallet(10_000_000)
    ledger.advance_slots(10)
    fixtures.fund_wallet(5_000_000, wallet=payer)
    changed_at = ledger.slot
    ledger.advance_slots(30)
    assert ledger.account(payer.pubkey(), changed_at - 1).lamports == 10_000_000  # type: ignore[union-attr]
    ledger.advance_slots(20)
    assert ledger.account(payer.pubkey(), ledger.slot - 40).lamports == 15_000_000  # type: ignore[union-attr]
    assert ledger.tracked_accounts == 0


def test_slot_and_block_height_differ_after_a_non_zero_genesis() -> None:
    """Block height counts blocks since genesis; slot numbers start at genesis_slot."""
    ledger = manual_ledger(genesis_slot=1_000)
    ledger.advance_slots(5)
    assert (ledger.slot, ledger.block_height) == (1_005, 5)
    assert ledger.blockhash_at(1_005).last_valid_block_height == 155
    assert ledger.tip().finalized_slot == 1_000


def test_wait_for_slot_wakes_when_another_thread_produces_it() -> None:
    """wait_for_slot blocks on a condition, not a sleep, and returns True once reached."""
    ledger = manual_ledger()
    producer = threading.Thread(target=lambda: ledger.advance_slots(3))
    producer.start()
    assert ledger.wait_for_slot(3, timeout_s=5)
    producer.join(5)
    assert not ledger.wait_for_slot(10, timeout_s=0.01)


def test_transactions_older_than_the_kept_history_are_forgotten_but_counted() -> None:
    """Past transaction_history_slots, a signature has no record; the total count stays."""
    ledger, fixtures = ledger_with_fixtures(transaction_history_slots=300, status_cache_slots=300)
    wallet = fixtures.fund_wallet()
    funding = ledger.signatures_for(wallet.pubkey(), ledger.slot, 10)[0].signature
    count = ledger.transaction_count()
    ledger.advance_slots(299)
    assert ledger.landed(funding) is not None
    ledger.advance_slots(1)
    assert ledger.landed(funding) is None
    assert ledger.signatures_for(wallet.pubkey(), ledger.slot, 10) == []
    assert ledger.transaction_count() == count
