"""fuselab.train (see docs/architecture.md)."""
