"""Results: what is stored of a run (files) and the figures derived from it (derive)."""
