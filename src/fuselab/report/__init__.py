"""fuselab.report (see docs/architecture.md)."""
