"""Account state as it was at recent slots.

LiteSVM holds only the current state. To answer reads at ``confirmed`` or
``finalized`` commitment, or from a lagging endpoint, the ledger records every
account a slot changed: the value before the slot first touched it, and the
value each later slot left. A read at slot ``s`` takes the newest value
recorded at or before ``s``; an account with no record since ``s`` is
unchanged, so its current value is the answer.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

from solders.account import Account
from solders.pubkey import Pubkey

__all__ = ["BEFORE_HISTORY", "UNCHANGED", "AccountHistory"]

# The slot key of an account's value from before the history first saw it change.
BEFORE_HISTORY: Final = -1


class _Unchanged:
    """Marker: the account has not changed since the slot asked about."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()


class AccountHistory:
    """Per-account values by slot, pruned to the slots still readable."""

    def __init__(self) -> None:
        self._slots: dict[Pubkey, list[int]] = {}
        self._values: dict[Pubkey, list[Account | None]] = {}
        self._touched: deque[tuple[int, set[Pubkey]]] = deque()

    def record(
        self, slot: int, address: Pubkey, before: Account | None, after: Account | None
    ) -> None:
        """Note that ``slot`` changed ``address`` from ``before`` to ``after``."""
        slots = self._slots.get(address)
        if slots is None:
            self._slots[address] = [BEFORE_HISTORY, slot]
            self._values[address] = [before, after]
        elif slots[-1] == slot:
            self._values[address][-1] = after
        else:
            slots.append(slot)
            self._values[address].append(after)
        self._note_touched(slot, address)

    def at(self, address: Pubkey, slot: int) -> Account | _Unchanged | None:
        """The value ``address`` had once ``slot`` was done, or :data:`UNCHANGED`."""
        slots = self._slots.get(address)
        if slots is None or slots[-1] <= slot:
            return UNCHANGED
        position = bisect.bisect_right(slots, slot) - 1
        return self._values[address][max(position, 0)]

    def changed_since(self, slot: int) -> Iterator[Pubkey]:
        """Every address whose value after ``slot`` differs from its value at ``slot``."""
        return (address for address, slots in self._slots.items() if slots[-1] > slot)

    def prune(self, oldest_readable_slot: int) -> None:
        """Forget values no read at or after ``oldest_readable_slot`` can need."""
        while self._touched and self._touched[0][0] < oldest_readable_slot:
            _, addresses = self._touched.popleft()
            self._compact(addresses, oldest_readable_slot)

    def __len__(self) -> int:
        return len(self._slots)

    def _note_touched(self, slot: int, address: Pubkey) -> None:
        if not self._touched or self._touched[-1][0] != slot:
            self._touched.append((slot, set()))
        self._touched[-1][1].add(address)

    def _compact(self, addresses: Iterable[Pubkey], oldest_readable_slot: int) -> None:
        for address in addresses:
            slots = self._slots.get(address)
            if slots is None:
                continue
            keep_from = max(bisect.bisect_right(slots, oldest_readable_slot) - 1, 0)
            if keep_from == len(slots) - 1:
                # Its newest value is older than any readable slot: it is the current value.
                del self._slots[address], self._values[address]
                continue
            self._slots[address] = [BEFORE_HISTORY, *slots[keep_from + 1 :]]
            self._values[address] = self._values[address][keep_from:]
