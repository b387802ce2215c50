"""``crank-node chaos``'s run: faults scheduled from a seed while orders flow, then the
five invariants checked against the chain and the database."""
