"""The project's root exception.

Every error crank-node raises on purpose is a :class:`CrankError`. Each
subclass's docstring is its default message, so ``raise ChildStartFailed()``
still says something useful, and a message given at the raise site wins.
"""

from __future__ import annotations

__all__ = ["CrankError"]


class CrankError(Exception):
    """crank-node failed."""

    def __init__(self, message: str | None = None) -> None:
        doc = (type(self).__doc__ or "").strip().splitlines()
        super().__init__(
            message if message is not None else (doc[0] if doc else type(self).__name__)
        )
