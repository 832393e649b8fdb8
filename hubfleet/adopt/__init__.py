"""Taking over an existing federation: `invoke adopt.mybinder PATH` reads an unlocked checkout of
a mybinder.org-deploy style repository (source), finds its members (deploy_py, workflow,
members, federation), plans every file hubfleet would write (files, secret_files, registry),
and writes them all or nothing (plan). What it cannot take over is reported with what to do
(leftovers)."""
