"""A trading scenario on a localnet: markets, funded makers, and reconciling them.

:func:`build_scenario` creates, through the localnet's fixtures, every market's
two mints, each maker's associated token account for every mint (funded, with
the markets' settlement authority approved as delegate for the whole balance:
a maker may buy and sell, so base and quote alike), funds the fee payer, and
advances slots until all of it is visible at ``confirmed``. Given an engine,
it stores the markets too. :mod:`crank_node.harness.order_flow` makes orders for it;
:func:`reconcile` checks balances afterwards against the database's fills.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from types import MappingProxyType
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment as RpcCommitment
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.engine import Engine

import market as domain
import storage
from localnet.commitment import Commitment
from localnet.errors import LocalnetError
from localnet.fixtures import LAMPORTS_PER_SOL
from localnet.server import LocalnetServer
from market import Fill, Market, TokenAccount, decode_token_account, sign_market
from market.fields import U64_MAX
from storage.models import Settlement, table_of

__all__ = [
    "DEFAULT_LOT_SIZE_ATOMS",
    "DEFAULT_TICK_SIZE_ATOMS",
    "BalanceMismatch",
    "Reconciliation",
    "Scenario",
    "ScenarioError",
    "build_scenario",
    "reconcile",
]

DECIMALS = 6
DEFAULT_LOT_SIZE_ATOMS = 10_000  # 0.01 base token
DEFAULT_TICK_SIZE_ATOMS = 10  # quote atoms per lot: 1_000 ticks is 1 quote token per base token
DEFAULT_FEE_PAYER_LAMPORTS = 100 * LAMPORTS_PER_SOL
MAX_SEED = 2**32 - 1  # keeps market ids ("SCN-<seed>-<index>") within their 32 characters
MAX_MARKETS = 100
# getMultipleAccounts answers at most this many accounts per request.
ACCOUNTS_PER_REQUEST = 100
RPC_TIMEOUT_S = 10.0

AccountSource = LocalnetServer | str


class ScenarioError(LocalnetError):
    """The scenario's token accounts are not what it built."""


@dataclass(frozen=True, eq=False, repr=False)
class Scenario:
    """Markets on a localnet, and makers funded and delegated on every mint of them.

    ``accounts`` maps ``(maker, mint)`` to the maker's associated token account,
    holding ``base_atoms_per_maker`` (base mints) or ``quote_atoms_per_maker``
    (quote mints), all of it delegated to ``settlement_authority``. Keypairs are
    kept out of ``repr`` and :meth:`to_json` (a keypair's ``str`` is its secret).
    """

    markets: tuple[Market, ...]
    makers: tuple[Keypair, ...]
    settlement_authority: Keypair
    fee_payer: Keypair
    accounts: Mapping[tuple[Pubkey, Pubkey], Pubkey]
    base_atoms_per_maker: int
    quote_atoms_per_maker: int
    seed: int
    _by_id: Mapping[str, Market] = field(init=False)
    _maker_index: Mapping[Pubkey, int] = field(init=False)

    def __post_init__(self) -> None:
        by_id = MappingProxyType({market.market_id: market for market in self.markets})
        makers = MappingProxyType({maker.pubkey(): i for i, maker in enumerate(self.makers)})
        object.__setattr__(self, "accounts", MappingProxyType(dict(self.accounts)))
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_maker_index", makers)

    def __repr__(self) -> str:
        return (
            f"Scenario(seed={self.seed}, markets={[m.market_id for m in self.markets]}, "
            f"makers={[str(m.pubkey()) for m in self.makers]}, "
            f"settlement_authority={self.settlement_authority.pubkey()}, "
            f"fee_payer={self.fee_payer.pubkey()})"
        )

    @property
    def markets_by_id(self) -> Mapping[str, Market]:
        """The markets by id: what ``market.validate_order(markets=...)`` takes."""
        return self._by_id

    def market(self, market_id: str) -> Market:
        return self._by_id[market_id]

    def maker_index(self, maker: Pubkey) -> int:
        """The maker's position in :attr:`makers` (how order flows name makers)."""
        return self._maker_index[maker]

    def token_account(self, maker: Pubkey, mint: Pubkey) -> Pubkey:
        return self.accounts[(maker, mint)]

    def token_accounts(self) -> tuple[Pubkey, ...]:
        """Every maker token account: by market, then maker, base before quote."""
        return tuple(self.accounts.values())

    def funding_atoms(self, mint: Pubkey) -> int:
        """What each maker holds, and has delegated, on their account of ``mint``."""
        if any(market.base_mint == mint for market in self.markets):
            return self.base_atoms_per_maker
        if any(market.quote_mint == mint for market in self.markets):
            return self.quote_atoms_per_maker
        raise KeyError(f"{mint} is not a mint of this scenario")

    def read_token_accounts(
        self, source: AccountSource, commitment: Commitment = Commitment.CONFIRMED
    ) -> dict[str, TokenAccount]:
        """Every maker token account, decoded, from the server's ledger or over JSON-RPC
        (``getMultipleAccounts`` at ``source`` when it is a URL). Raises ScenarioError
        for a missing account, ``market.InvalidTokenAccount`` for one that is not a token
        account."""
        addresses = self.token_accounts()
        raw = (
            _ledger_accounts(source, addresses, commitment)
            if isinstance(source, LocalnetServer)
            else _rpc_accounts(source, addresses, commitment)
        )
        decoded = {}
        for address, found in zip(addresses, raw, strict=True):
            if found is None:
                raise ScenarioError(f"token account {address} does not exist at {commitment.name}")
            decoded[str(address)] = decode_token_account(address, found[0], found[1])
        return decoded

    def snapshot_balances(
        self, source: AccountSource, commitment: Commitment = Commitment.CONFIRMED
    ) -> dict[str, int]:
        """Every maker token account's balance, by address (base58): :func:`reconcile`'s input."""
        accounts = self.read_token_accounts(source, commitment)
        return {address: account.amount for address, account in accounts.items()}

    def to_json(self) -> dict[str, Any]:
        """Markets and public addresses only, never a secret key."""
        return {
            "seed": self.seed,
            "markets": [market.to_json() for market in self.markets],
            "makers": [str(maker.pubkey()) for maker in self.makers],
            "settlement_authority": str(self.settlement_authority.pubkey()),
            "fee_payer": str(self.fee_payer.pubkey()),
            "token_accounts": [
                {"maker": str(maker), "mint": str(mint), "address": str(address)}
                for (maker, mint), address in self.accounts.items()
            ],
            "base_atoms_per_maker": self.base_atoms_per_maker,
            "quote_atoms_per_maker": self.quote_atoms_per_maker,
        }


def build_scenario(
    server: LocalnetServer,
    engine: Engine | None,
    *,
    markets: int = 2,
    makers: int = 4,
    settlement_authority: Keypair,
    fee_payer: Keypair,
    base_atoms_per_maker: int,
    quote_atoms_per_maker: int,
    seed: int,
    lot_size_atoms: int = DEFAULT_LOT_SIZE_ATOMS,
    tick_size_atoms: int = DEFAULT_TICK_SIZE_ATOMS,
    fee_payer_lamports: int = DEFAULT_FEE_PAYER_LAMPORTS,
) -> Scenario:
    """Set up ``markets`` markets (ids ``SCN-<seed>-<index>``) and ``makers`` makers (new
    keypairs, shared by every market) on ``server``; store the markets when ``engine``
    is given (DuplicateEntry if the seed was used on that database before).

    One fixture transaction per mint, token account, mint-to and approval, and one
    to fund the fee payer. Raises ValueError naming a bad argument.
    """
    _check_arguments(markets, makers, base_atoms_per_maker, quote_atoms_per_maker, seed)
    fixtures = server.fixtures
    fixtures.fund_wallet(fee_payer_lamports, wallet=fee_payer)
    keypairs = tuple(Keypair() for _ in range(makers))
    delegate = settlement_authority.pubkey()
    built: list[Market] = []
    accounts: dict[tuple[Pubkey, Pubkey], Pubkey] = {}
    for index in range(markets):
        base, quote = fixtures.create_mint(DECIMALS), fixtures.create_mint(DECIMALS)
        built.append(
            Market(
                market_id=f"SCN-{seed}-{index}",
                base_mint=base.address,
                base_decimals=DECIMALS,
                quote_mint=quote.address,
                quote_decimals=DECIMALS,
                lot_size_atoms=lot_size_atoms,
                tick_size_atoms=tick_size_atoms,
                settlement_authority=delegate,
                fee_payer=fee_payer.pubkey(),
            )
        )
        # Signed by the settlement authority, or no node matches or settles it.
        built[-1] = replace(
            built[-1], definition_signature=sign_market(built[-1], settlement_authority)
        )
        for maker, (mint, atoms) in product(
            keypairs, ((base, base_atoms_per_maker), (quote, quote_atoms_per_maker))
        ):
            account = fixtures.fund_token_account(maker.pubkey(), mint, atoms)
            fixtures.approve_delegate(account, maker, delegate, atoms, mint)
            accounts[(maker.pubkey(), mint.address)] = account
    server.advance_slots(server.config.confirmation_depth_slots + 1)
    if engine is not None:
        for market in built:
            storage.insert_market(engine, market)
    return Scenario(
        tuple(built),
        keypairs,
        settlement_authority,
        fee_payer,
        accounts,
        base_atoms_per_maker,
        quote_atoms_per_maker,
        seed,
    )


def _check_arguments(markets: int, makers: int, base: int, quote: int, seed: int) -> None:
    checks = (
        ("markets", markets, 1, MAX_MARKETS),
        ("makers", makers, 1, 10_000),
        ("base_atoms_per_maker", base, 0, U64_MAX),
        ("quote_atoms_per_maker", quote, 0, U64_MAX),
        ("seed", seed, 0, MAX_SEED),
    )
    for name, value, lowest, highest in checks:
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            raise ValueError(f"{name}: must be an integer in {lowest}..{highest}, got {value!r}")


_RawAccount = tuple[bytes, Pubkey] | None


def _ledger_accounts(
    server: LocalnetServer, addresses: Sequence[Pubkey], commitment: Commitment
) -> list[_RawAccount]:
    ledger = server.ledger
    slot = ledger.tip().slot(commitment)
    found = [ledger.account(address, slot) for address in addresses]
    return [None if a is None else (bytes(a.data), a.owner) for a in found]


def _rpc_accounts(
    url: str, addresses: Sequence[Pubkey], commitment: Commitment
) -> list[_RawAccount]:
    """``getMultipleAccounts`` through solana-py, in batches; on a loop of its own, so
    this must not be called from a thread already running an event loop."""

    async def fetch() -> list[_RawAccount]:
        raw: list[_RawAccount] = []
        async with AsyncClient(url, timeout=RPC_TIMEOUT_S) as client:
            for start in range(0, len(addresses), ACCOUNTS_PER_REQUEST):
                batch = list(addresses[start : start + ACCOUNTS_PER_REQUEST])
                answer = await client.get_multiple_accounts(
                    batch, RpcCommitment(commitment.rpc_name)
                )
                raw.extend(None if a is None else (bytes(a.data), a.owner) for a in answer.value)
        return raw

    return asyncio.run(fetch())


# --- reconciliation ---------------------------------------------------------------


@dataclass(frozen=True)
class BalanceMismatch:
    """A token account whose balance is not what the fills say; ``None`` where an
    account is missing from a snapshot (so nothing could be expected of it)."""

    account: str
    expected: int | None
    actual: int | None


@dataclass(frozen=True)
class Reconciliation:
    """Balances after = before + the net of the settled fills, account by account.

    ``settled_fill_count`` fills were counted (settlement ``confirmed``, or every
    fill given directly); ``unsettled_fill_ids`` lists the others by settlement
    status (``pending``, ``submitted``, ``failed``): they must not have moved money.
    """

    mismatches: tuple[BalanceMismatch, ...]
    accounts_checked: int
    settled_fill_count: int
    unsettled_fill_ids: Mapping[str, tuple[str, ...]]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accounts_checked": self.accounts_checked,
            "settled_fill_count": self.settled_fill_count,
            "unsettled_fill_ids": {s: list(ids) for s, ids in self.unsettled_fill_ids.items()},
            "mismatches": [
                {"account": m.account, "expected": m.expected, "actual": m.actual}
                for m in self.mismatches
            ],
        }


def reconcile(
    before: Mapping[str, int], after: Mapping[str, int], fills: Iterable[Fill] | Engine
) -> Reconciliation:
    """Compare ``after`` with ``before`` plus what the fills moved.

    Given an engine, only fills whose settlement is ``confirmed`` count
    (:func:`storage.expected_balance_changes`); the rest are reported by status.
    Given fills, all of them count: pass only settled ones. Every account in
    either snapshot or touched by a counted fill is checked. The database is read
    twice (changes, then statuses): reconcile once settling has stopped.
    """
    if isinstance(fills, Engine):
        changes = storage.expected_balance_changes(fills)
        unsettled, settled = _by_settlement_status(fills)
    else:
        counted = list(fills)
        changes, unsettled, settled = domain.net_balance_changes(counted), {}, len(counted)
    mismatches = []
    accounts = sorted(set(before) | set(after) | set(changes))
    for account in accounts:
        start, actual = before.get(account), after.get(account)
        expected = None if start is None else start + changes.get(account, 0)
        if expected is None or actual is None or expected != actual:
            mismatches.append(BalanceMismatch(account, expected, actual))
    return Reconciliation(tuple(mismatches), len(accounts), settled, MappingProxyType(unsettled))


_SETTLEMENTS = table_of(Settlement)


def _settlement_statuses(engine: Engine) -> list[tuple[str, str]]:
    stmt = select(_SETTLEMENTS.c.fill_id, _SETTLEMENTS.c.status).order_by(_SETTLEMENTS.c.fill_id)
    with storage.read_transaction(engine, "crank_node.harness.scenario_reconcile") as connection:
        return [(row.fill_id, row.status) for row in connection.execute(stmt)]


def _by_settlement_status(engine: Engine) -> tuple[dict[str, tuple[str, ...]], int]:
    """The fill ids whose settlement is not confirmed, by status; and how many are confirmed."""
    by_status: defaultdict[str, list[str]] = defaultdict(list)
    for fill_id, status in _settlement_statuses(engine):
        by_status[status].append(fill_id)
    confirmed = by_status.pop("confirmed", [])
    return {status: tuple(ids) for status, ids in sorted(by_status.items())}, len(confirmed)
