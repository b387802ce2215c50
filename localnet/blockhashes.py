"""The window of recent blockhashes a transaction may reference.

LiteSVM only knows its latest blockhash, so the ledger keeps the window a real
cluster keeps: a blockhash produced at block height ``h`` is valid while the
block height is at most ``h + MAX_PROCESSING_AGE`` (151 block heights, so 151
blockhashes are valid at any time), and RPC reports that last height as
``lastValidBlockHeight``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from solders.hash import Hash

__all__ = ["MAX_PROCESSING_AGE", "VALID_BLOCKHASHES", "BlockhashWindow", "SlotBlockhash"]

# Agave's MAX_PROCESSING_AGE: how many block heights a blockhash stays usable after its own.
MAX_PROCESSING_AGE = 150
VALID_BLOCKHASHES = MAX_PROCESSING_AGE + 1


class SlotBlockhash(NamedTuple):
    """The blockhash a slot produced, and that slot's block height."""

    blockhash: Hash
    slot: int
    block_height: int

    @property
    def last_valid_block_height(self) -> int:
        return self.block_height + MAX_PROCESSING_AGE


class BlockhashWindow:
    """Recent blockhashes by hash and by slot; older ones are forgotten.

    Kept for longer than the validity window so that lagging endpoints, which
    look at older slots, still find the blockhashes of those slots.
    """

    def __init__(self, retained_slots: int) -> None:
        self._retained_slots = max(retained_slots, VALID_BLOCKHASHES)
        self._by_hash: OrderedDict[Hash, SlotBlockhash] = OrderedDict()
        self._by_slot: dict[int, SlotBlockhash] = {}

    def record(self, blockhash: Hash, slot: int, block_height: int) -> SlotBlockhash:
        """Remember the blockhash ``slot`` produced; forget the oldest beyond retention."""
        entry = SlotBlockhash(blockhash, slot, block_height)
        self._by_hash[blockhash] = entry
        self._by_slot[slot] = entry
        while len(self._by_hash) > self._retained_slots:
            _, oldest = self._by_hash.popitem(last=False)
            self._by_slot.pop(oldest.slot, None)
        return entry

    def at_or_before(self, slot: int) -> SlotBlockhash:
        """The blockhash of ``slot``, or of the newest slot before it that has one."""
        entry = self._by_slot.get(slot)
        if entry is not None:
            return entry
        older = [known for known in self._by_slot.values() if known.slot <= slot]
        if older:
            return max(older, key=lambda known: known.slot)
        return next(iter(self._by_hash.values()))

    def of_slot(self, slot: int) -> SlotBlockhash | None:
        """The blockhash ``slot`` produced, if still retained."""
        return self._by_slot.get(slot)

    def lookup(self, blockhash: Hash) -> SlotBlockhash | None:
        """What the window knows of ``blockhash``, if anything."""
        return self._by_hash.get(blockhash)

    def is_valid(self, blockhash: Hash, block_height: int) -> bool:
        """True if a transaction with ``blockhash`` may be processed at ``block_height``.

        The blockhash must already exist at that height (a lagging node has not
        seen newer ones) and must not have aged out of the window.
        """
        entry = self._by_hash.get(blockhash)
        if entry is None:
            return False
        return entry.block_height <= block_height <= entry.last_valid_block_height

    def __len__(self) -> int:
        return len(self._by_hash)
