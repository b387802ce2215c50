"""The node: its settings, its supervision tree and pipeline, and its HTTP listeners
(public order intake; operator health, status and metrics). Modules are imported
one by one (nothing is re-exported here) so that a command loads only what it uses."""
