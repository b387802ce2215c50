"""What the integration and e2e tiers share: the database and localnet fixtures (pytest
plugins loaded by tests/conftest.py) and the helpers that run a node process, read the
chain's memos and drive a desk of makers."""
