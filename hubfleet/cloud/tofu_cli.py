"""The `tofu` command: the one place hubfleet runs OpenTofu.

Each call runs `tofu -chdir=<stack> ...` with an environment built for it (TF_DATA_DIR per
member and stack, no input, no update check, the provider and state credentials decrypted from
the member's secrets); nothing is written to os.environ, so two members' stacks can run at once.
Plans and `init` show what tofu says; outputs are captured and never printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.errors import HubfleetError

INSTALL_HINT = "install OpenTofu (https://opentofu.org/docs/intro/install/) or set HUBFLEET_TOFU"

# exit codes of `plan -detailed-exitcode`
NO_CHANGES, FAILED, CHANGES = 0, 1, 2


class TofuError(HubfleetError):
    """tofu is missing or one of its commands failed."""


def find_tofu(explicit: str | None) -> str:
    """The tofu executable: `explicit` (HUBFLEET_TOFU) or `tofu` on PATH."""
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise TofuError(f"HUBFLEET_TOFU={explicit} is not an executable; {INSTALL_HINT}")
        return found
    found = shutil.which("tofu")
    if not found:
        raise TofuError(f"tofu not found on PATH; {INSTALL_HINT}. Nothing was run")
    return found


@dataclass(frozen=True)
class Tofu:
    """tofu for one member's stack: the binary, the stack directory, its data dir, its env."""

    binary: str
    stack_dir: Path
    data_dir: Path
    env: Mapping[str, str] = field(repr=False)  # holds credentials: never shown
    label: str = ""  # "member demo, stack s3", for messages
    color: bool = False

    def _argv(self, command: str, args: Sequence[str]) -> list[str]:
        color = [] if self.color else ["-no-color"]
        return [self.binary, f"-chdir={self.stack_dir}", command, *color, *args]

    def _env(self) -> dict[str, str]:
        env = dict(self.env)
        env.update(
            TF_DATA_DIR=str(self.data_dir / ".terraform"),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
        )
        return env

    def _call(self, command: str, args: Sequence[str], capture: bool) -> tuple[int, bytes, bytes]:
        pipe = subprocess.PIPE if capture else None
        proc = subprocess.run(
            self._argv(command, args),
            env=self._env(),
            stdout=pipe,
            stderr=pipe,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return proc.returncode, proc.stdout or b"", proc.stderr or b""

    def _failed(self, command: str, code: int, said: bytes = b"") -> TofuError:
        lines = [ln.strip() for ln in said.decode(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln] or lines[-1:]
        detail = f": {errors[0].lstrip('│ ').strip()}" if errors else " (its message is above)"
        return TofuError(f"{self.label}: tofu {command} failed (exit {code}){detail}")

    def init(self, backend_files: Sequence[Path], backend_settings: Mapping[str, str]) -> None:
        """`init` with the shared backend file(s) and this member's settings (its state key).

        Quiet when it works; its output is shown when it does not.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.data_dir, 0o700)
        args = ["-input=false", "-reconfigure"]
        args += [f"-backend-config={path}" for path in backend_files]
        args += [f"-backend-config={k}={v}" for k, v in backend_settings.items()]
        code, out, err = self._call("init", args, capture=True)
        if code != 0:
            print((out + err).decode(errors="replace"), end="", flush=True)
            raise self._failed("init", code, err or out)

    def plan(self, var_file: Path, plan_file: Path | None, destroy: bool = False) -> bool:
        """`plan`, shown as tofu prints it; True when it would change something."""
        args = ["-input=false", "-detailed-exitcode", f"-var-file={var_file}"]
        if plan_file is not None:
            args.append(f"-out={plan_file}")
        if destroy:
            args.append("-destroy")
        code, _, _ = self._call("plan", args, capture=False)
        if code not in (NO_CHANGES, CHANGES):
            raise self._failed("plan", code)
        return code == CHANGES

    def apply(self, plan_file: Path) -> None:
        """`apply` of a saved plan (which tofu applies without asking again)."""
        code, _, _ = self._call("apply", ["-input=false", str(plan_file)], capture=False)
        if code != 0:
            raise self._failed("apply", code)

    def outputs(self) -> dict[str, Any]:
        """Every output's value, sensitive ones included, captured in memory (never printed)."""
        code, out, err = self._call("output", ["-json"], capture=True)
        if code != 0:
            raise self._failed("output", code, err)
        try:
            data = json.loads(out.decode() or "{}")
        except json.JSONDecodeError as err:
            raise TofuError(f"{self.label}: tofu output -json did not print JSON") from err
        return {name: body.get("value") for name, body in data.items() if isinstance(body, dict)}
