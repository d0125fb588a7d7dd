"""The commit protocol of DESIGN §4: journal, compare-and-swap, projection, recovery."""
