"""openkb-git: a Git-backed, versioned knowledge store where every ingest is a commit."""

__version__ = "0.1.0"
