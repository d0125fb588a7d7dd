"""The sample hooks: data files, not code. `openkb hooks install NAME` copies one into a KB's
.openkb/hooks/. This folder is packaged as openkb_git.hook_samples (pyproject.toml), so an
installed wheel has the samples too."""
