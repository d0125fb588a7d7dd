"""`python -m openkb_git` runs the `openkb` command."""

from openkb_git.cli.main import main

main()
