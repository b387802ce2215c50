"""localnet: a Solana JSON-RPC server of the project's own, over solders' LiteSVM.

It runs the real SPL Token, Token-2022, Memo and Associated Token Account
programs, produces slots in real time (or on request), keeps the 151-blockhash
validity window, lands sent transactions in a later slot, answers at the three
commitment levels, and serves several endpoints over one ledger, each with
faults that can be changed while it runs.
"""

from localnet.blockhashes import MAX_PROCESSING_AGE, VALID_BLOCKHASHES
from localnet.commitment import ChainTip, Commitment
from localnet.config import LocalnetConfig
from localnet.errors import (
    EndpointNotFound,
    FixtureFailed,
    InvalidFaults,
    InvalidFixtureSpec,
    InvalidLocalnetConfig,
    LocalnetError,
    LocalnetNotRunning,
    LocalnetStartFailed,
)
from localnet.faults import FaultError, Faults
from localnet.fixture_spec import FixtureSpec, apply_fixture_spec
from localnet.fixtures import LAMPORTS_PER_SOL, Fixtures, MintFixture
from localnet.ledger import Ledger, SubmitOutcome
from localnet.server import LocalnetServer
from localnet.transaction_log import LandedTransaction

__all__ = [
    "LAMPORTS_PER_SOL",
    "MAX_PROCESSING_AGE",
    "VALID_BLOCKHASHES",
    "ChainTip",
    "Commitment",
    "EndpointNotFound",
    "FaultError",
    "Faults",
    "FixtureFailed",
    "FixtureSpec",
    "Fixtures",
    "InvalidFaults",
    "InvalidFixtureSpec",
    "InvalidLocalnetConfig",
    "LandedTransaction",
    "Ledger",
    "LocalnetConfig",
    "LocalnetError",
    "LocalnetNotRunning",
    "LocalnetServer",
    "LocalnetStartFailed",
    "MintFixture",
    "SubmitOutcome",
    "apply_fixture_spec",
]
