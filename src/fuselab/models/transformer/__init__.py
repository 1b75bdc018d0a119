"""Token-fusion transformer (thesis 004): modality tokens injected at chosen layers."""
