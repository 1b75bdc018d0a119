"""fuselab.study (see docs/architecture.md)."""
