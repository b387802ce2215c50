"""The ``crank-node`` commands: argument parsing and output, one module per command
(:mod:`crank_node.cli.main` lists them). The work is done elsewhere in crank_node."""
