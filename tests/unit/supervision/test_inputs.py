"""Naming the input rows a failure was about: supervision.working_on and the
CrankActor.on_input_failure hook that breaks crash loops (actors.poison)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from supervision import CrankActor, InputKey, inputs_of, launch, working_on

ORDER = InputKey("order", "o1", "m0")
SETTLEMENT = InputKey("settlement", "s1", "m0")


def test_an_exception_leaving_the_block_carries_its_inputs_outermost_last() -> None:
    """Nested blocks each add their keys once, innermost first."""
    with (
        pytest.raises(RuntimeError) as caught,
        working_on(SETTLEMENT),
        working_on(ORDER, SETTLEMENT),
    ):
        raise RuntimeError("bug")
    assert inputs_of(caught.value) == (ORDER, SETTLEMENT)


def test_an_exception_handled_inside_the_block_blames_nothing_later() -> None:
    """Keys go with the exception, not the thread: a later failure outside the block
    names no input."""
    with working_on(ORDER):
        try:
            raise ValueError("handled")
        except ValueError:
            pass
    assert inputs_of(RuntimeError("later")) == ()


def test_inputs_are_found_through_the_exception_it_was_raised_from() -> None:
    """An error re-raised as another still names the input of its cause."""
    with pytest.raises(KeyError) as caught:
        try:
            with working_on(ORDER):
                raise ValueError("inner")
        except ValueError as error:
            raise KeyError("outer") from error
    assert inputs_of(caught.value) == (ORDER,)


class _Failing(CrankActor):
    def __init__(self, seen: list[Any], done: threading.Event) -> None:
        super().__init__(name="failing")
        self.seen = seen
        self.done = done

    def on_receive(self, message: Any) -> Any:
        with working_on(InputKey("order", str(message), None)):
            raise RuntimeError(f"cannot handle {message}")

    def on_input_failure(self, inputs: tuple[InputKey, ...], error: BaseException) -> None:
        self.seen.append((inputs, str(error)))
        self.done.set()


def test_a_tell_that_fails_the_actor_hands_its_inputs_to_on_input_failure() -> None:
    """The hook runs in the failing actor's thread with the keys and the error, before
    the actor's exit is reported."""
    seen: list[Any] = []
    done = threading.Event()
    actor = _Failing(seen, done)
    launch(actor)
    actor.deliver_to_self("o7", sender="test")
    assert done.wait(5)
    assert actor.exited.wait(5)
    assert seen == [((InputKey("order", "o7", None),), "cannot handle o7")]
