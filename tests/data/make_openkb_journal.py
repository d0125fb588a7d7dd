"""How tests/data/openkb-0.4.5-journal.json was made: with the real OpenKB package.

    python3 -m venv /work/openkb045 && /work/openkb045/bin/pip install openkb==0.4.5
    /work/openkb045/bin/python tests/data/make_openkb_journal.py KB_DIR > tests/data/openkb-0.4.5-journal.json

KB_DIR must be a knowledge base holding raw/, wiki/index.md and .openkb/hashes.json (the
fixture was made in /tmp/openkb-capture/kb, a fresh `openkb init` with one document).
OpenKB's `snapshot_paths()` is called as its `add` calls it before publishing a document
(raw/ls.md does not exist yet: an entry with no backup; wiki/index.md and hashes.json are
copied to .openkb/staging/rollback-<id>/), then the "crash": the run stops with the
journal `active`. The script prints the journal and leaves it, with its backup, in KB_DIR.
"""

import sys
from pathlib import Path

from openkb.mutation import snapshot_paths

kb = Path(sys.argv[1]).resolve()
snapshot = snapshot_paths(kb, [kb / "raw" / "ls.md", kb / "wiki" / "index.md", kb / ".openkb" / "hashes.json"],
                          operation="add", details={"doc_name": "ls"})
(kb / "raw" / "ls.md").write_text("# ls\n\nhalf of it")  # what the interrupted add left
sys.stdout.write(snapshot.journal_path.read_text())
