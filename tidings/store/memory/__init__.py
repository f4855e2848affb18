"""In-memory implementations of the state protocols, re-exported by ``tidings.testing``."""
