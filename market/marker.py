"""The settlement marker: an account only one settlement of a fill can ever create.

Every attempt of a settlement carries, in the same atomic transaction as both
legs, a System Program ``CreateAccountWithSeed``: base = the market's
settlement authority, 0 bytes of data, owner = the System Program, rent-exempt
lamports paid by the fee payer. The account can be created once: a second
attempt that lands fails at the create (``AccountAlreadyInUse``) and moves no
token. So the marker exists if and only if a settlement of that fill landed
(docs/ARCHITECTURE.md, "Exactly once"), and reading it answers "did it settle?"
from current state, without signature history.

**The seed is secret until the first attempt is sent.** Anyone can send
lamports to an address, and a funded address makes the create fail forever
(a liveness attack). So the seed is derived from something only the authority
can produce: the first 32 hex characters of SHA-256 of the authority's
ed25519 signature over ``crank-node:marker:<fill id>``. Ed25519 is
deterministic, so every node holding the authority key derives the same seed;
nobody without the key can compute it from the fill id, the orders or the memo.

Once an attempt is on the wire its marker address is public, and a third party
could still fund it before the attempt lands. That attempt then fails at the
create although nothing settled: an ``AccountAlreadyInUse`` is therefore
"settled by another attempt" only when one of our attempts is found landed
without error; otherwise the marker is *squatted* and the settlement needs an
operator (it never counts as settled, and nothing is ever signed twice).

**Reclaim.** A marker's rent goes back to the fee payer with
``TransferWithSeed`` (all its lamports: the account is then gone), but only
when every attempt of that settlement is long dead (see :func:`reclaimable`):
closing a marker earlier would let a still-valid attempt land and settle the
fill a second time.
"""

from __future__ import annotations

import hashlib

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import (
    ID as SYSTEM_PROGRAM_ID,
)
from solders.system_program import (
    CreateAccountWithSeedParams,
    TransferWithSeedParams,
    create_account_with_seed,
    transfer_with_seed,
)

__all__ = [
    "MARKER_DOMAIN",
    "MARKER_RENT_LAMPORTS",
    "MARKER_SEED_CHARS",
    "RECLAIM_MARGIN_BLOCKS",
    "Marker",
    "marker_address",
    "marker_create_instruction",
    "marker_for",
    "marker_reclaim_instruction",
    "marker_seed",
    "reclaimable",
]

MARKER_DOMAIN = b"crank-node:marker:"
# A seed is at most 32 bytes (MAX_SEED_LEN); 32 hex characters are 128 bits.
MARKER_SEED_CHARS = 32
# Rent-exempt minimum of a 0-byte account: (128 + 0) bytes * 3480 lamports/byte-year * 2
# years, as the Rent sysvar's defaults give it (checked on LiteSVM by the tests).
MARKER_RENT_LAMPORTS = 890_880
# Reclaim only when the finalized block height is past every attempt's
# last_valid_block_height by at least this much: the 300-slot status-cache
# window, so that no attempt can still be processed or replayed anywhere.
RECLAIM_MARGIN_BLOCKS = 300


class Marker:
    """One fill's marker: its secret seed and its public address."""

    __slots__ = ("address", "seed")

    def __init__(self, seed: str, address: Pubkey) -> None:
        self.seed = seed
        self.address = address

    def __repr__(self) -> str:  # the seed is the secret part: never in a log line
        return f"Marker(address={self.address})"


def marker_seed(settlement_authority: Keypair, fill_id: str) -> str:
    """The secret seed of ``fill_id``'s marker: 32 hex characters of SHA-256 of the
    authority's signature over ``crank-node:marker:<fill id>`` (module docstring)."""
    signature = settlement_authority.sign_message(MARKER_DOMAIN + fill_id.encode("utf-8"))
    return hashlib.sha256(bytes(signature)).hexdigest()[:MARKER_SEED_CHARS]


def marker_address(settlement_authority: Pubkey, seed: str) -> Pubkey:
    """The address ``CreateAccountWithSeed`` creates for ``seed`` (owner: System)."""
    return Pubkey.create_with_seed(settlement_authority, seed, SYSTEM_PROGRAM_ID)


def marker_for(settlement_authority: Keypair, fill_id: str) -> Marker:
    """``fill_id``'s marker, seed and address."""
    seed = marker_seed(settlement_authority, fill_id)
    return Marker(seed, marker_address(settlement_authority.pubkey(), seed))


def marker_create_instruction(
    *, fee_payer: Pubkey, settlement_authority: Pubkey, marker: Marker
) -> Instruction:
    """``CreateAccountWithSeed``: 0 bytes, owner System, rent paid by ``fee_payer``.
    The authority (the base) signs; the settlement transaction has it sign anyway."""
    return create_account_with_seed(
        CreateAccountWithSeedParams(
            from_pubkey=fee_payer,
            to_pubkey=marker.address,
            base=settlement_authority,
            seed=marker.seed,
            lamports=MARKER_RENT_LAMPORTS,
            space=0,
            owner=SYSTEM_PROGRAM_ID,
        )
    )


def marker_reclaim_instruction(
    *, settlement_authority: Pubkey, marker: Marker, to: Pubkey, lamports: int
) -> Instruction:
    """``TransferWithSeed`` of ``lamports`` (all of them: the account is then closed)
    from the marker back to ``to`` (the fee payer), signed by the authority."""
    return transfer_with_seed(
        TransferWithSeedParams(
            from_pubkey=marker.address,
            from_base=settlement_authority,
            from_seed=marker.seed,
            from_owner=SYSTEM_PROGRAM_ID,
            to_pubkey=to,
            lamports=lamports,
        )
    )


def reclaimable(
    last_valid_block_heights: list[int] | tuple[int, ...], finalized_block_height: int | None
) -> bool:
    """May a marker whose settlement had attempts valid until these heights be closed,
    given the block height seen at ``finalized`` (by a view no older than the one
    that read the marker; the caller's job)? Only when every attempt is past its
    ``last_valid_block_height`` by at least :data:`RECLAIM_MARGIN_BLOCKS`. With no
    attempt known (``[]``) or no height, never: nothing proves the door is shut."""
    if finalized_block_height is None or not last_valid_block_heights:
        return False
    return finalized_block_height > max(last_valid_block_heights) + RECLAIM_MARGIN_BLOCKS
