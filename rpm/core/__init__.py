"""The bottom layer: the project's error types and the names every stage shares (no other rpm imports)."""
