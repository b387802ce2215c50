"""SettlementActor: pending settlements driven to exactly one landed transaction each
(docs/ARCHITECTURE.md, "Exactly once"); the decisions are pure
(:mod:`actors.settlement.protocol`)."""

from actors.settlement.actor import SettlementActor
from actors.settlement.authorize import Refused
from actors.settlement.messages import (
    Drain,
    GetSettlementState,
    SettlementSettings,
    SettlementState,
    signer_map,
)
from actors.settlement.protocol import (
    AttemptView,
    Decision,
    Expire,
    Landed,
    LandedFailed,
    SignatureStatus,
    Wait,
    decide,
    describe_failure,
    failed_leg,
    parse_signature_statuses,
)
from actors.settlement.work import AttemptsExpired, Finished, SettlementWork

__all__ = [
    "AttemptView",
    "AttemptsExpired",
    "Decision",
    "Drain",
    "Expire",
    "Finished",
    "GetSettlementState",
    "Landed",
    "LandedFailed",
    "Refused",
    "SettlementActor",
    "SettlementSettings",
    "SettlementState",
    "SettlementWork",
    "SignatureStatus",
    "Wait",
    "decide",
    "describe_failure",
    "failed_leg",
    "parse_signature_statuses",
    "signer_map",
]
