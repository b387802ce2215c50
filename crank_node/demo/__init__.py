"""``crank-node demo``'s run: localnet, markets and makers, one or more nodes, random
orders, progress and the reconciling summary."""
