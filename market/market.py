"""A market: which two mints trade, in which units, and who settles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from solders.pubkey import Pubkey
from solders.signature import Signature
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from market.errors import InvalidField, InvalidMarket, InvalidSize
from market.fields import check_market_id, check_pubkey, check_u8, check_u64
from market.json_fields import JsonDict, JsonFields

__all__ = ["Market"]

# SPL Token mints store decimals as a u8; anything past 19 cannot hold even 1 whole
# token in a u64 amount, so it is a typo, not a market.
MAX_DECIMALS = 19
_JSON_FIELDS = (
    "market_id",
    "base_mint",
    "base_decimals",
    "quote_mint",
    "quote_decimals",
    "lot_size_atoms",
    "tick_size_atoms",
    "settlement_authority",
    "fee_payer",
    "base_token_program",
    "quote_token_program",
)
# The programs a market's mints may belong to; each leg is a TransferChecked of its mint's.
TOKEN_PROGRAM_IDS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)


@dataclass(frozen=True)
class Market:
    """One market: base tokens are bought and sold for quote tokens.

    Units, all integers:

    - sizes are in base atoms and must be multiples of ``lot_size_atoms``;
    - prices are in quote atoms *per lot* and must be multiples of
      ``tick_size_atoms``; so a fill of ``base_atoms`` at ``price_atoms`` costs
      exactly ``price_atoms * base_atoms // lot_size_atoms`` quote atoms, with no
      rounding (``base_atoms`` is a whole number of lots).

    ``settlement_authority`` is the delegate every maker approves on the account
    they pay from; it signs both legs of every settlement. ``fee_payer`` pays the
    settlement transactions' fees (it may be the same key). ``base_token_program``
    and ``quote_token_program`` are the programs that keep each mint (SPL Token or
    Token-2022, checked on chain by ``crank-node market create``); each settlement
    leg is a ``TransferChecked`` of that program.

    ``definition_signature`` is the settlement authority's signature of the
    definition (:mod:`market.definition`), as stored with it; it is not part of
    the market's value (equality, JSON), and a market whose signature does not
    verify is never matched or settled
    (:func:`market.authorization.market_definition_refusal`).

    Raises :class:`~market.errors.InvalidMarket` (or another
    :class:`~market.errors.InvalidField`) naming the field on bad values.
    """

    market_id: str
    base_mint: Pubkey
    base_decimals: int
    quote_mint: Pubkey
    quote_decimals: int
    lot_size_atoms: int
    tick_size_atoms: int
    settlement_authority: Pubkey
    fee_payer: Pubkey
    base_token_program: Pubkey = TOKEN_PROGRAM_ID
    quote_token_program: Pubkey = TOKEN_PROGRAM_ID
    definition_signature: Signature | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_market_id("market_id", self.market_id)
        for field in ("base_mint", "quote_mint", "settlement_authority", "fee_payer"):
            check_pubkey(field, getattr(self, field))
        for field in ("base_decimals", "quote_decimals"):
            if check_u8(field, getattr(self, field)) > MAX_DECIMALS:
                raise InvalidMarket(field, f"must be at most {MAX_DECIMALS}")
        for field in ("lot_size_atoms", "tick_size_atoms"):
            if check_u64(field, getattr(self, field)) == 0:
                raise InvalidMarket(field, "must be positive")
        for field in ("base_token_program", "quote_token_program"):
            if getattr(self, field) not in TOKEN_PROGRAM_IDS:
                raise InvalidMarket(field, "must be the SPL Token or the Token-2022 program")
        if self.base_mint == self.quote_mint:
            raise InvalidMarket("quote_mint", "must differ from base_mint")
        signature = self.definition_signature
        if signature is not None and not isinstance(signature, Signature):
            raise InvalidField(
                "definition_signature", f"must be a Signature, got {type(signature).__name__}"
            )

    def to_json(self) -> JsonDict:
        """The JSON form: pubkeys in base58, integers as integers."""
        return {
            "market_id": self.market_id,
            "base_mint": str(self.base_mint),
            "base_decimals": self.base_decimals,
            "quote_mint": str(self.quote_mint),
            "quote_decimals": self.quote_decimals,
            "lot_size_atoms": self.lot_size_atoms,
            "tick_size_atoms": self.tick_size_atoms,
            "settlement_authority": str(self.settlement_authority),
            "fee_payer": str(self.fee_payer),
            "base_token_program": str(self.base_token_program),
            "quote_token_program": str(self.quote_token_program),
        }

    @classmethod
    def from_json(cls, document: object) -> Market:
        """Parse :meth:`to_json`'s form; errors name the field."""
        fields = JsonFields(document, "market", _JSON_FIELDS)
        return cls(
            market_id=fields.text("market_id"),
            base_mint=fields.pubkey("base_mint"),
            base_decimals=fields.u64("base_decimals"),
            quote_mint=fields.pubkey("quote_mint"),
            quote_decimals=fields.u64("quote_decimals"),
            lot_size_atoms=fields.u64("lot_size_atoms"),
            tick_size_atoms=fields.u64("tick_size_atoms"),
            settlement_authority=fields.pubkey("settlement_authority"),
            fee_payer=fields.pubkey("fee_payer"),
            # Optional: markets written before Token-2022 support are SPL Token's.
            base_token_program=fields.optional_pubkey("base_token_program", TOKEN_PROGRAM_ID),
            quote_token_program=fields.optional_pubkey("quote_token_program", TOKEN_PROGRAM_ID),
        )

    def quote_atoms(self, price_atoms: int, base_atoms: int) -> int:
        """Quote atoms paid for ``base_atoms`` (a whole number of lots) at ``price_atoms``."""
        lots, remainder = divmod(base_atoms, self.lot_size_atoms)
        if remainder:
            # Unreachable through validated orders; guards callers doing their own sums.
            raise InvalidSize("size_atoms", "is not a whole number of lots")
        return price_atoms * lots
