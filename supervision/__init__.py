"""OTP-style supervision, timers, mailboxes and message tracing on pykka."""

from supervision.actor import (
    ActorExit,
    CrankActor,
    ExitReason,
    SelfAddress,
    ShutdownExit,
    StartFailed,
    StartTimedOut,
    launch,
)
from supervision.children import ChildStartFailed, ChildState
from supervision.clock import REAL_CLOCK, Clock, ManualClock, RealClock
from supervision.deadletters import DEAD_LETTERS, DeadLetters
from supervision.errors import CrankError
from supervision.handle import ActorHandle, HandleState, SendResult
from supervision.inputs import InputKey, inputs_of, working_on
from supervision.introspection import ChildSnapshot, GetSnapshot, SupervisorSnapshot, describe_tree
from supervision.mailbox import Mailbox, MailboxClosed, MailboxFull
from supervision.root import EXIT_DEADLINE, EXIT_GAVE_UP, EXIT_OK, RootRunner
from supervision.spec import BackoffPolicy, ChildSpec, RestartIntensity, RestartType, Strategy
from supervision.supervisor import (
    AddChild,
    RemoveChild,
    SupervisionEvent,
    Supervisor,
    SupervisorGaveUp,
)
from supervision.tracing import current_trace_id, new_trace_id, set_tracing, trace

__all__ = [
    "DEAD_LETTERS",
    "EXIT_DEADLINE",
    "EXIT_GAVE_UP",
    "EXIT_OK",
    "REAL_CLOCK",
    "ActorExit",
    "ActorHandle",
    "AddChild",
    "BackoffPolicy",
    "ChildSnapshot",
    "ChildSpec",
    "ChildStartFailed",
    "ChildState",
    "Clock",
    "CrankActor",
    "CrankError",
    "DeadLetters",
    "ExitReason",
    "GetSnapshot",
    "HandleState",
    "InputKey",
    "Mailbox",
    "MailboxClosed",
    "MailboxFull",
    "ManualClock",
    "RealClock",
    "RemoveChild",
    "RestartIntensity",
    "RestartType",
    "RootRunner",
    "SelfAddress",
    "SendResult",
    "ShutdownExit",
    "StartFailed",
    "StartTimedOut",
    "Strategy",
    "SupervisionEvent",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorSnapshot",
    "current_trace_id",
    "describe_tree",
    "inputs_of",
    "launch",
    "new_trace_id",
    "set_tracing",
    "trace",
    "working_on",
]
