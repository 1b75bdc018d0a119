"""fuselab.evaluate (see docs/architecture.md)."""
