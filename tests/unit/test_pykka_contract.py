"""The parts of pykka that supervision/ builds on. If a pykka release moves
them, these fail first, with the reason, instead of the runtime failing oddly."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pykka
from pykka._envelope import Envelope

from supervision import CrankActor, launch


def test_pykka_is_a_4_x_release() -> None:
    """setup.cfg pins pykka below 5; the internals below are 4.x's."""
    assert version("pykka").split(".")[0] == "4"


def test_the_threading_actor_runs_its_loop_through_the_overridable_actor_loop() -> None:
    """CrankActor replaces Actor._actor_loop, which pykka's thread must target."""
    source = inspect.getsource(pykka.ThreadingActor._start_actor_loop)
    assert "target=self._actor_loop" in source


def test_the_inbox_is_created_per_actor_and_refs_cache_it() -> None:
    """CrankActor swaps the inbox after Actor.__init__ and rebuilds the ref for that reason."""
    actor = CrankActor()
    assert actor.actor_ref.actor_inbox is actor.actor_inbox
    assert type(actor.actor_inbox).__name__ == "Mailbox"


def test_stop_and_proxy_messages_are_the_ones_the_loop_passes_to_pykka() -> None:
    """_ActorStop and the proxy messages exist and are handled by Actor._handle_receive."""
    assert hasattr(pykka.messages, "_ActorStop")
    assert hasattr(pykka.messages, "ProxyCall")
    assert "_ActorStop" in inspect.getsource(pykka.Actor._handle_receive)
    envelope = Envelope("m", reply_to=None)
    assert (envelope.message, envelope.reply_to) == ("m", None)


def test_pykka_stop_and_proxies_still_work_on_a_crank_actor() -> None:
    """A CrankActor is still a pykka actor: ref.stop() and proxies behave as pykka documents."""

    class Counter(CrankActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def bump(self) -> int:
            self.count += 1
            return self.count

    ref = launch(Counter())
    assert ref.proxy().bump().get(timeout=5) == 1
    assert ref.stop(timeout=5) is True
    assert not ref.is_alive()
