"""The 151-blockhash validity window the ledger keeps for LiteSVM."""

from __future__ import annotations

from solders.hash import Hash

from localnet.blockhashes import MAX_PROCESSING_AGE, VALID_BLOCKHASHES, BlockhashWindow


def filled(slots: int, retained: int = 400) -> tuple[BlockhashWindow, list[Hash]]:
    window = BlockhashWindow(retained)
    hashes = [Hash.new_unique() for _ in range(slots)]
    for slot, blockhash in enumerate(hashes):
        window.record(blockhash, slot, slot)
    return window, hashes


def test_a_blockhash_is_valid_from_its_own_height_through_150_more() -> None:
    """Produced at height h, valid at h..h+150, invalid at h+151; lastValidBlockHeight is h+150."""
    window, hashes = filled(10)
    assert window.lookup(hashes[5]).last_valid_block_height == 5 + MAX_PROCESSING_AGE  # type: ignore[union-attr]
    assert window.is_valid(hashes[5], 5)
    assert window.is_valid(hashes[5], 5 + MAX_PROCESSING_AGE)
    assert not window.is_valid(hashes[5], 5 + MAX_PROCESSING_AGE + 1)


def test_a_blockhash_is_unknown_at_heights_before_it_was_produced() -> None:
    """A lagging view (an older height) has not seen newer blockhashes."""
    window, hashes = filled(10)
    assert not window.is_valid(hashes[9], 8)


def test_151_blockhashes_are_valid_at_any_height() -> None:
    """At height H the valid ones are exactly those produced at H-150..H."""
    window, hashes = filled(300)
    valid = [slot for slot, blockhash in enumerate(hashes) if window.is_valid(blockhash, 299)]
    assert len(valid) == VALID_BLOCKHASHES
    assert valid[0] == 299 - MAX_PROCESSING_AGE


def test_the_window_forgets_beyond_retention_but_never_keeps_fewer_than_151() -> None:
    """Retention bounds memory; it is never below the validity window itself."""
    window, hashes = filled(500, retained=10)
    assert len(window) == VALID_BLOCKHASHES
    assert window.lookup(hashes[0]) is None
    assert window.at_or_before(499).blockhash == hashes[499]


def test_at_or_before_finds_the_newest_known_slot() -> None:
    """A slot without its own entry answers with the newest older one."""
    window = BlockhashWindow(200)
    first, second = Hash.new_unique(), Hash.new_unique()
    window.record(first, 10, 0)
    window.record(second, 20, 1)
    assert window.at_or_before(15).blockhash == first
    assert window.at_or_before(25).blockhash == second
