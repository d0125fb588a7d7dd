"""Verbs: one module per command family; each takes a KB (or a path) and returns data."""
