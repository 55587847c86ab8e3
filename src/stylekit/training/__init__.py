"""Shared training machinery: in-memory data, the checkpointing loop."""
