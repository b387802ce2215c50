"""Fixtures described as text, for ``bin/crank-node localnet`` options.

- ``--wallet NAME[:SOL]``: a funded wallet (10 SOL unless given);
- ``--mint NAME:DECIMALS``: an SPL mint;
- ``--token-account WALLET:MINT[:AMOUNT]``: the wallet's associated token
  account for the mint, with AMOUNT base units minted into it;
- ``--approve WALLET:MINT:DELEGATE:AMOUNT``: the wallet approves DELEGATE (a
  wallet name or a base58 address) to move AMOUNT from that token account.

With a keys directory, every keypair is read from ``NAME.json`` there if it
exists (the Solana CLI's format) and written there otherwise, so a restarted
localnet keeps its addresses and other processes can sign with them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from localnet.errors import InvalidFixtureSpec
from localnet.fixtures import LAMPORTS_PER_SOL, Fixtures

__all__ = [
    "ApprovalSpec",
    "FixtureSpec",
    "MintSpec",
    "TokenAccountSpec",
    "WalletSpec",
    "apply_fixture_spec",
]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_WALLET_SOL = 10
MAX_DECIMALS = 18
MAX_AMOUNT = 2**64 - 1


@dataclass(frozen=True)
class WalletSpec:
    name: str
    lamports: int


@dataclass(frozen=True)
class MintSpec:
    name: str
    decimals: int


@dataclass(frozen=True)
class TokenAccountSpec:
    wallet: str
    mint: str
    amount: int


@dataclass(frozen=True)
class ApprovalSpec:
    wallet: str
    mint: str
    delegate: str
    amount: int


@dataclass(frozen=True)
class FixtureSpec:
    """Everything to set up, checked for consistency when parsed."""

    wallets: tuple[WalletSpec, ...] = ()
    mints: tuple[MintSpec, ...] = ()
    token_accounts: tuple[TokenAccountSpec, ...] = ()
    approvals: tuple[ApprovalSpec, ...] = field(default=())

    @classmethod
    def parse(
        cls,
        wallets: list[str] | None = None,
        mints: list[str] | None = None,
        token_accounts: list[str] | None = None,
        approvals: list[str] | None = None,
    ) -> FixtureSpec:
        spec = cls(
            tuple(_wallet(text) for text in wallets or []),
            tuple(_mint(text) for text in mints or []),
            tuple(_token_account(text) for text in token_accounts or []),
            tuple(_approval(text) for text in approvals or []),
        )
        spec._check_references()
        return spec

    @property
    def empty(self) -> bool:
        return not (self.wallets or self.mints or self.token_accounts or self.approvals)

    def _check_references(self) -> None:
        wallets = _unique("--wallet", [wallet.name for wallet in self.wallets])
        mints = _unique("--mint", [mint.name for mint in self.mints])
        accounts = {(account.wallet, account.mint) for account in self.token_accounts}
        for account in self.token_accounts:
            _known("--token-account", "wallet", account.wallet, wallets)
            _known("--token-account", "mint", account.mint, mints)
        for approval in self.approvals:
            if (approval.wallet, approval.mint) not in accounts:
                raise InvalidFixtureSpec(
                    f"--approve: {approval.wallet}:{approval.mint} has no --token-account"
                )
            if approval.delegate not in wallets:
                _address("--approve", approval.delegate)


def apply_fixture_spec(
    fixtures: Fixtures, spec: FixtureSpec, keys_dir: Path | None = None
) -> dict[str, Any]:
    """Create what ``spec`` describes; returns the addresses (never a secret) by name."""
    keys = _KeyStore(keys_dir)
    wallets = {w.name: fixtures.fund_wallet(w.lamports, keys.keypair(w.name)) for w in spec.wallets}
    mints = {
        m.name: fixtures.create_mint(
            m.decimals, keys.keypair(f"mint-{m.name}-authority"), keys.keypair(f"mint-{m.name}")
        )
        for m in spec.mints
    }
    token_accounts = {
        f"{a.wallet}:{a.mint}": fixtures.fund_token_account(
            wallets[a.wallet].pubkey(), mints[a.mint], a.amount
        )
        for a in spec.token_accounts
    }
    for approval in spec.approvals:
        delegate = wallets.get(approval.delegate)
        fixtures.approve_delegate(
            token_accounts[f"{approval.wallet}:{approval.mint}"],
            wallets[approval.wallet],
            delegate.pubkey() if delegate else Pubkey.from_string(approval.delegate),
            approval.amount,
            mints[approval.mint],
        )
    return {
        "wallets": {name: str(wallet.pubkey()) for name, wallet in wallets.items()},
        "mints": {
            name: {
                "address": str(m.address),
                "decimals": m.decimals,
                "authority": str(m.authority.pubkey()),
            }
            for name, m in mints.items()
        },
        "token_accounts": {name: str(address) for name, address in token_accounts.items()},
        "approvals": [
            {"wallet": a.wallet, "mint": a.mint, "delegate": a.delegate, "amount": a.amount}
            for a in spec.approvals
        ],
    }


class _KeyStore:
    """Keypairs by name, kept in a directory when one is given."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def keypair(self, name: str) -> Keypair:
        if self._directory is None:
            return Keypair()
        path = self._directory / f"{name}.json"
        if path.exists():
            return Keypair.from_bytes(bytes(json.loads(path.read_text())))
        keypair = Keypair()
        # Created owner-only from the start: it holds a secret key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(list(bytes(keypair)), handle)
        return keypair


def _parts(option: str, text: str, shape: str, lowest: int, highest: int) -> list[str]:
    parts = text.split(":")
    if not lowest <= len(parts) <= highest:
        raise InvalidFixtureSpec(f"{option}: {text!r} is not {shape}")
    return parts


def _name(option: str, text: str) -> str:
    if not _NAME.fullmatch(text):
        raise InvalidFixtureSpec(f"{option}: name {text!r} must be 1-64 of A-Z a-z 0-9 _ -")
    return text


def _number(option: str, label: str, text: str, highest: int) -> int:
    if not text.isdigit() or int(text) > highest:
        raise InvalidFixtureSpec(
            f"{option}: {label} {text!r} is not a whole number up to {highest}"
        )
    return int(text)


def _wallet(text: str) -> WalletSpec:
    parts = _parts("--wallet", text, "NAME[:SOL]", 1, 2)
    sol = _number("--wallet", "SOL", parts[1], 10**9) if len(parts) == 2 else DEFAULT_WALLET_SOL
    return WalletSpec(_name("--wallet", parts[0]), sol * LAMPORTS_PER_SOL)


def _mint(text: str) -> MintSpec:
    name, decimals = _parts("--mint", text, "NAME:DECIMALS", 2, 2)
    return MintSpec(_name("--mint", name), _number("--mint", "DECIMALS", decimals, MAX_DECIMALS))


def _token_account(text: str) -> TokenAccountSpec:
    parts = _parts("--token-account", text, "WALLET:MINT[:AMOUNT]", 2, 3)
    amount = _number("--token-account", "AMOUNT", parts[2], MAX_AMOUNT) if len(parts) == 3 else 0
    return TokenAccountSpec(
        _name("--token-account", parts[0]), _name("--token-account", parts[1]), amount
    )


def _approval(text: str) -> ApprovalSpec:
    wallet, mint, delegate, amount = _parts("--approve", text, "WALLET:MINT:DELEGATE:AMOUNT", 4, 4)
    return ApprovalSpec(
        _name("--approve", wallet),
        _name("--approve", mint),
        delegate,
        _number("--approve", "AMOUNT", amount, MAX_AMOUNT),
    )


def _unique(option: str, names: list[str]) -> set[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidFixtureSpec(f"{option}: {name!r} is given twice")
        seen.add(name)
    return seen


def _known(option: str, kind: str, name: str, known: set[str]) -> None:
    if name not in known:
        raise InvalidFixtureSpec(f"{option}: unknown {kind} {name!r}")


def _address(option: str, text: str) -> None:
    try:
        Pubkey.from_string(text)
    except ValueError:
        raise InvalidFixtureSpec(
            f"{option}: delegate {text!r} is neither a --wallet name nor a base58 address"
        ) from None
