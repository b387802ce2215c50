"""Account values at older slots, for confirmed/finalized reads and lagging endpoints."""

from __future__ import annotations

from solders.account import Account
from solders.pubkey import Pubkey

from localnet.account_history import UNCHANGED, AccountHistory


def account(lamports: int) -> Account:
    return Account(lamports, b"", Pubkey.default(), False, 0)


def test_a_read_at_a_slot_sees_the_value_that_slot_left() -> None:
    """Before the first change: the old value; between changes: the latest at or before."""
    history, key = AccountHistory(), Pubkey.new_unique()
    history.record(5, key, account(1), account(2))
    history.record(9, key, account(2), account(3))
    assert history.at(key, 4) == account(1)
    assert history.at(key, 5) == account(2)
    assert history.at(key, 8) == account(2)
    assert history.at(key, 9) is UNCHANGED


def test_an_account_created_later_did_not_exist_before() -> None:
    """A first change from None means reads before it see no account."""
    history, key = AccountHistory(), Pubkey.new_unique()
    history.record(3, key, None, account(7))
    assert history.at(key, 2) is None


def test_several_changes_in_one_slot_keep_the_last() -> None:
    """Two transactions in a slot: the slot's value is what the second left."""
    history, key = AccountHistory(), Pubkey.new_unique()
    history.record(4, key, account(1), account(2))
    history.record(4, key, account(2), account(3))
    history.record(6, key, account(3), account(4))
    assert history.at(key, 4) == account(3)
    assert history.at(key, 3) == account(1)


def test_untouched_accounts_are_unchanged_and_changed_since_lists_touched_ones() -> None:
    """Only accounts changed after a slot need history to read at that slot."""
    history, touched, untouched = AccountHistory(), Pubkey.new_unique(), Pubkey.new_unique()
    history.record(5, touched, account(1), account(2))
    assert history.at(untouched, 1) is UNCHANGED
    assert list(history.changed_since(4)) == [touched]
    assert list(history.changed_since(5)) == []


def test_pruning_keeps_every_readable_answer_and_drops_settled_accounts() -> None:
    """After pruning at slot 8 reads at >= 8 are the same; an account quiet since is forgotten."""
    history, busy, quiet = AccountHistory(), Pubkey.new_unique(), Pubkey.new_unique()
    history.record(2, quiet, account(1), account(2))
    history.record(3, busy, account(10), account(11))
    history.record(10, busy, account(11), account(12))
    history.prune(8)
    assert history.at(busy, 8) == account(11)
    assert history.at(busy, 10) is UNCHANGED
    assert history.at(quiet, 8) is UNCHANGED
    assert len(history) == 1
