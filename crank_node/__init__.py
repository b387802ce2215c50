"""crank-node, the application: an order-matching crank for Solana SPL-token markets.

The packages beside this one are the parts it is built from, in the one direction
their dependencies point: ``supervision`` (the actor runtime) <- ``market`` (the
pure domain) <- ``storage`` (the shared database) <- ``actors`` (the node's
actors) <- ``crank_node``; ``localnet`` (the LiteSVM-backed chain) sits beside
``market``. This package holds what makes them a service:

- :mod:`crank_node.cli`: the ``crank-node`` commands, one thin module each;
- :mod:`crank_node.node`: the node itself: settings, the supervision tree, the
  HTTP listeners (public intake; operator health, status, metrics);
- :mod:`crank_node.demo` and :mod:`crank_node.chaos`: the demo and the chaos run;
- :mod:`crank_node.harness`: what those two (and the commands) share: node
  processes, the run skeleton (signals, workdir, wallet), the node HTTP client.

Subpackages import nothing here, so that a command loads only what it uses
(``crank-node trace`` never pays for the chain and database libraries).
docs/ARCHITECTURE.md is the full picture.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
