"""tests/clients: the vendored solana-py suite runs only in its own pytest process."""

# tests/clients/solana_py holds solana-py's own integration suite, with its own pytest
# settings and plugins; test_solana_py_suite.py runs it in a subprocess.
collect_ignore = ["solana_py"]
