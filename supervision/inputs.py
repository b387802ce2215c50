"""Which input rows an actor is working on, so that a failure can name them.

A crash loop is an actor failing on the same input after every restart: a
poison row read again by each new instance (and by the next node that takes
its market). To break it the failure must name its input. Code in an actor's
thread wraps the work on one input in :func:`working_on`; an exception that
leaves the block carries the keys (:func:`inputs_of`), and
:meth:`supervision.CrankActor.on_input_failure` gets them when that exception
fails the actor. What to do with them (count them, quarantine the row at the
second failure) is the actors' business: supervision knows no database.

Attaching the keys to the exception rather than to the thread means an
exception caught and handled inside the block blames nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import NamedTuple

__all__ = ["InputKey", "inputs_of", "working_on"]

_ATTRIBUTE = "crank_inputs"


class InputKey(NamedTuple):
    """One input row: its quarantine kind (``order``, ``settlement``...), its id, and
    the market it belongs to when known."""

    kind: str
    row_id: str
    market_id: str | None = None


@contextmanager
def working_on(*keys: InputKey) -> Iterator[None]:
    """Blame ``keys`` for any exception that leaves the block (module docstring)."""
    try:
        yield
    except BaseException as error:
        blamed: tuple[InputKey, ...] = getattr(error, _ATTRIBUTE, ())
        # An exception type with __slots__ has nothing to attach to.
        with suppress(AttributeError):
            setattr(error, _ATTRIBUTE, (*blamed, *(k for k in keys if k not in blamed)))
        raise


def inputs_of(error: BaseException) -> tuple[InputKey, ...]:
    """The inputs blamed for ``error``, or for an exception it was raised from."""
    found: list[InputKey] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found.extend(k for k in getattr(current, _ATTRIBUTE, ()) if k not in found)
        current = current.__cause__ or current.__context__
    return tuple(found)
