"""fuselab.models (see docs/architecture.md)."""
