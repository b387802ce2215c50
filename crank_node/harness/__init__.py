"""What the commands, the demo and the chaos run share: node processes and their
settings, the run skeleton (signals, a fresh workdir, a new wallet), and the node's
HTTP client."""
