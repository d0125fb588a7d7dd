"""The commit protocol of docs/protocol.md: journal, compare-and-swap, projection, recovery."""
