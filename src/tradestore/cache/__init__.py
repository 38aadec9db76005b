"""Two-tier cache: in-process L1, Redis L2, invalidation."""
