"""Is every package crank-node runs on really crank-node's?

crank-node installs top-level packages with generic names (``market``,
``storage``, ``supervision``...). PyPI has distributions with some of those
names: installing one into the same environment overwrites our files, and the
node then fails far from the cause (``module 'market' has no attribute
'MalformedJson'``) while ``pip check`` sees nothing wrong. At start,
:func:`foreign_owners` asks the installed distributions' records
(``importlib.metadata.packages_distributions``) who else claims our packages;
``crank-node`` refuses to run while another does, naming it. The cure is an
environment of its own (``pipx install .`` or a venv).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata

__all__ = ["DISTRIBUTION", "PACKAGES", "foreign_owners", "ownership_problem"]

DISTRIBUTION = "crank-node"
PACKAGES = ("actors", "crank_node", "localnet", "market", "storage", "supervision")


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def foreign_owners(
    owners: Mapping[str, Iterable[str]] | None = None, packages: Iterable[str] = PACKAGES
) -> dict[str, list[str]]:
    """``{package: [other distributions claiming it]}`` for our packages that another
    installed distribution also claims (``owners`` defaults to the environment's)."""
    claimed = metadata.packages_distributions() if owners is None else owners
    found: dict[str, list[str]] = {}
    for package in packages:
        others = sorted({d for d in claimed.get(package, ()) if _normalized(d) != DISTRIBUTION})
        if others:
            found[package] = others
    return found


def ownership_problem(found: Mapping[str, list[str]]) -> str | None:
    """The message refusing to run, or None when every package is ours."""
    if not found:
        return None
    listed = "; ".join(
        f"{package!r} is also installed by {', '.join(o)}" for package, o in found.items()
    )
    return (
        f"crank-node's packages were overwritten in this Python environment: {listed}. "
        "Install crank-node into an environment of its own (`pipx install .`, or a "
        "virtualenv) so no other distribution can replace its files"
    )
