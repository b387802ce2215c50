"""market: the pure domain of crank-node: markets, signed orders, books,
matching, and settlement transactions.

Nothing here starts a thread, reads a clock or does I/O: time (``now_s``),
existing orders, decoded token accounts and recent blockhashes are all passed
in. Actors (OrderMonitor, MatchActor, SettlementActor) and the HTTP/CLI intake
call into it.

Where to look:

- :mod:`market.order`: order terms, the canonical ``crank-node:order:v1`` encoding
  and the order id rule (SHA-256 of the encoding, base58).
- :mod:`market.signing`, :mod:`market.cancel`: maker signatures, cancel requests.
- :mod:`market.validation`, :mod:`market.funding`, :mod:`market.token_account`:
  every check, each error naming its field (:mod:`market.errors`).
- :mod:`market.book`, :mod:`market.matching`, :mod:`market.fill`: price-time
  priority, fills at the resting price, no self-trade.
- :mod:`market.settlement`, :mod:`market.priority_fee`: the signed settlement
  transaction of one fill, and what to pay per compute unit.
- :mod:`market.authorization`: the invariant "the node never moves a maker's
  tokens beyond what the maker signed", checked before every settlement is signed
  and before a stored order rests in a book.
"""

from market.authorization import (
    VERIFIED,
    SettlementEvidence,
    StoredFill,
    Unauthorized,
    VerifiedSignatures,
    authorize_settlement,
    cancel_refusal,
    market_definition_refusal,
    order_refusal,
    settlement_refusal,
)
from market.book import Book, PriceLevel, RestingOrder
from market.cancel import CANCEL_DOMAIN, CancelRequest, SignedCancel, sign_cancel
from market.cancel_record import cancel_record, parse_cancel_record, stored_cancel_refusal
from market.definition import (
    MARKET_DEFINITION_SIZE,
    MARKET_DOMAIN,
    market_definition_bytes,
    sign_market,
)
from market.errors import (
    AccountFrozen,
    BadBase58,
    BadSignature,
    CancelExpired,
    DuplicateClientOrderId,
    DuplicateOrder,
    InsufficientDelegation,
    InsufficientFunds,
    InvalidFeePolicy,
    InvalidField,
    InvalidMarket,
    InvalidPrice,
    InvalidSize,
    InvalidTokenAccount,
    MalformedJson,
    MarketError,
    MissingField,
    NumberOutOfRange,
    OrderExpired,
    OrderNotInBook,
    UnknownField,
    UnknownMarket,
    WrongAccount,
    WrongAccountMint,
    WrongAccountOwner,
    WrongDelegate,
    WrongFieldType,
    WrongMarket,
    WrongSigner,
)
from market.fill import FILL_DOMAIN, Fill, fill_id, net_balance_changes
from market.funding import (
    account_problem,
    check_funding,
    funding_problem,
    owed_atoms,
    pay_mint,
    receive_mint,
)
from market.funding_judgement import FundingClaim, judge_funding
from market.json_fields import JsonDict
from market.marker import (
    MARKER_RENT_LAMPORTS,
    RECLAIM_MARGIN_BLOCKS,
    Marker,
    marker_address,
    marker_create_instruction,
    marker_for,
    marker_reclaim_instruction,
    marker_seed,
    reclaimable,
)
from market.market import Market
from market.matching import MatchResult, Uncrossed, crosses, match, uncross
from market.order import ORDER_DOMAIN, ORDER_ENCODING_SIZE, Order, Side, decode_order
from market.priority_fee import (
    LAMPORTS_PER_SIGNATURE,
    MAX_COMPUTE_UNIT_LIMIT,
    CappedPrice,
    FixedPriorityFee,
    PercentilePriorityFee,
    PriorityFeePolicy,
    TransactionFee,
    cap_price,
    compute_unit_limit_for,
    priority_fee_lamports,
    transaction_fee,
)
from market.settlement import (
    DEFAULT_COMPUTE_UNIT_LIMIT,
    MEMO_PREFIX,
    SettlementTransaction,
    build_settlement_transaction,
    fill_id_from_memo,
    settlement_instructions,
    settlement_memo,
)
from market.signing import SignedOrder, sign_order
from market.token_account import (
    TOKEN_ACCOUNT_SIZE,
    AccountState,
    TokenAccount,
    decode_token_account,
)
from market.validation import DuplicateCheck, validate_cancel, validate_order, validate_terms

__all__ = [
    "CANCEL_DOMAIN",
    "DEFAULT_COMPUTE_UNIT_LIMIT",
    "FILL_DOMAIN",
    "LAMPORTS_PER_SIGNATURE",
    "MARKER_RENT_LAMPORTS",
    "MARKET_DEFINITION_SIZE",
    "MARKET_DOMAIN",
    "MAX_COMPUTE_UNIT_LIMIT",
    "MEMO_PREFIX",
    "ORDER_DOMAIN",
    "ORDER_ENCODING_SIZE",
    "RECLAIM_MARGIN_BLOCKS",
    "TOKEN_ACCOUNT_SIZE",
    "VERIFIED",
    "AccountFrozen",
    "AccountState",
    "BadBase58",
    "BadSignature",
    "Book",
    "CancelExpired",
    "CancelRequest",
    "CappedPrice",
    "DuplicateCheck",
    "DuplicateClientOrderId",
    "DuplicateOrder",
    "Fill",
    "FixedPriorityFee",
    "FundingClaim",
    "InsufficientDelegation",
    "InsufficientFunds",
    "InvalidFeePolicy",
    "InvalidField",
    "InvalidMarket",
    "InvalidPrice",
    "InvalidSize",
    "InvalidTokenAccount",
    "JsonDict",
    "MalformedJson",
    "Marker",
    "Market",
    "MarketError",
    "MatchResult",
    "MissingField",
    "NumberOutOfRange",
    "Order",
    "OrderExpired",
    "OrderNotInBook",
    "PercentilePriorityFee",
    "PriceLevel",
    "PriorityFeePolicy",
    "RestingOrder",
    "SettlementEvidence",
    "SettlementTransaction",
    "Side",
    "SignedCancel",
    "SignedOrder",
    "StoredFill",
    "TokenAccount",
    "TransactionFee",
    "Unauthorized",
    "Uncrossed",
    "UnknownField",
    "UnknownMarket",
    "VerifiedSignatures",
    "WrongAccount",
    "WrongAccountMint",
    "WrongAccountOwner",
    "WrongDelegate",
    "WrongFieldType",
    "WrongMarket",
    "WrongSigner",
    "account_problem",
    "authorize_settlement",
    "build_settlement_transaction",
    "cancel_record",
    "cancel_refusal",
    "cap_price",
    "check_funding",
    "compute_unit_limit_for",
    "crosses",
    "decode_order",
    "decode_token_account",
    "fill_id",
    "fill_id_from_memo",
    "funding_problem",
    "judge_funding",
    "marker_address",
    "marker_create_instruction",
    "marker_for",
    "marker_reclaim_instruction",
    "marker_seed",
    "market_definition_bytes",
    "market_definition_refusal",
    "match",
    "net_balance_changes",
    "order_refusal",
    "owed_atoms",
    "parse_cancel_record",
    "pay_mint",
    "priority_fee_lamports",
    "receive_mint",
    "reclaimable",
    "settlement_instructions",
    "settlement_memo",
    "settlement_refusal",
    "sign_cancel",
    "sign_market",
    "sign_order",
    "stored_cancel_refusal",
    "transaction_fee",
    "uncross",
    "validate_cancel",
    "validate_order",
    "validate_terms",
]
