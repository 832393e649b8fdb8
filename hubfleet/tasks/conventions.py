"""What every task shares, so the fronts behave alike.

- `invoke TASK --help` and `invoke TASK -h` show the task's help, also when the task takes
  positional arguments (invoke alone would take `--help` as the first of them) and also when a
  flag starts with h (`--host`: invoke would make `-h` its short flag).
- Short flags are the same everywhere: `-n` is `--dry-run`, `-y` is `--yes`, `-h` is `--help`;
  no other flag has one (invoke alone gives each flag its first free letter, so `-d` meant
  `--debug`, `--dry-run` or `--domain` depending on the task).
- The same words for the same flags (`DEBUG_HELP`, ...).

Tasks are declared with `task` from here instead of invoke's; `name_tasks` records each task's
dotted name and namespace so its help can be printed from inside the task.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, overload

from invoke.collection import Collection
from invoke.exceptions import ParseError
from invoke.parser.argument import Argument
from invoke.program import Program
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

SHORT_FLAGS = {"dry_run": "n", "yes": "y"}
# The range each number flag accepts, by its name; any other number flag: 0 .. 10**9.
BOUNDS: dict[str, tuple[float, float]] = {
    "timeout": (1, 86_400),
    "port": (1, 65_535),
    "bytes": (8, 1_024),
    "node_cpus": (1, 1_024),
    "node_ram_gb": (0.5, 65_536),
    "node_disk_gb": (1, 1_000_000),
    "gpus": (0, 64),
    "days": (1, 3_650),
}
DEBUG_HELP = "show the traceback of a failure"
HELP_HELP = "show this help and exit"


class _Positional(Argument):
    """A positional argument that counts as given when the task's --help is: the task is not
    run then, and invoke does not stop at the missing argument before the help is shown."""

    def __init__(self, help_flag: Argument, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.help_flag = help_flag

    @property
    def value(self) -> Any:
        found = self._value if self._value is not None else self.default
        if found is None and self.help_flag.value:
            return ""
        return found

    @value.setter
    def value(self, arg: str) -> None:
        self.set_value(arg, cast=True)


class _Number(Argument):
    """A number flag: a value that is not a number, or out of its range, is one line (exit
    1) naming the flag, before the task runs; invoke alone ends in a traceback."""

    def set_value(self, value: Any, cast: bool = True) -> None:
        flag = f"--{str(self.name).replace('_', '-')}"
        word = "whole number" if self.kind is int else "number"
        try:
            super().set_value(value, cast)
        except (TypeError, ValueError):
            raise ParseError(f"error: {flag}: {value!r} is not a {word}") from None
        low, high = BOUNDS.get(str(self.attr_name or self.name), (0, 10**9))
        number = self.value
        if not (isinstance(number, int | float) and low <= number <= high):
            raise ParseError(f"error: {flag}: {value} is out of range ({low:g} to {high:g})")


class HubfleetTask(Task[Any]):
    """An invoke task with hubfleet's flag conventions (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)
        self.help_source: tuple[Collection, str] | None = None

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name in SHORT_FLAGS:
            opts["names"] = [*opts["names"], SHORT_FLAGS[name]]
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        saved = dict(self.help)  # invoke consumes the help texts; keep them for the next parse
        try:
            args = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = saved
        help_flag = Argument(names=("help", "h"), kind=bool, default=False, help=HELP_HELP)
        shaped: list[Argument] = []
        for arg in args:
            if arg.kind in (int, float) and not arg.positional:
                arg = _Number(
                    names=arg.names,
                    kind=arg.kind,
                    default=arg.default,
                    help=arg.help,
                    optional=arg.optional,
                    incrementable=arg.incrementable,
                    attr_name=arg.attr_name,
                )
            if arg.positional:
                arg = _Positional(
                    help_flag,
                    names=arg.names,
                    kind=arg.kind,
                    default=arg.default,
                    help=arg.help,
                    positional=True,
                    optional=arg.optional,
                    incrementable=arg.incrementable,
                    attr_name=arg.attr_name,
                )
            shaped.append(arg)
        return [*shaped, help_flag]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.pop("help", False):
            self.print_help()
            return None
        self.refuse_flags_as_values(args, kwargs)
        return super().__call__(*args, **kwargs)

    @property
    def dotted_name(self) -> str:
        return self.help_source[1] if self.help_source else str(self.name)

    def refuse_flags_as_values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A positional argument that looks like a flag is a flag the task does not have
        (invoke hands an unknown `--flag` to a missing positional as its value)."""
        bound = inspect.signature(self.body).bind_partial(*args, **kwargs).arguments
        for name in self.positional:
            value = bound.get(name)
            if isinstance(value, str) and value.startswith("-"):
                from hubfleet.cli import fail

                fail(
                    f"{self.dotted_name}: {value!r} is not one of its flags, nor a value for "
                    f"{name.upper()}; for help run: invoke --help {self.dotted_name}"
                )

    def print_help(self) -> None:
        """The same help `invoke --help TASK` prints."""
        if self.help_source is None:
            raise RuntimeError(f"task {self.name} was not named by name_tasks()")
        namespace, dotted = self.help_source
        binary = "hubfleet" if os.path.basename(sys.argv[0]) == "hubfleet" else "invoke"
        Program(namespace=namespace, binary=binary, name="hubfleet").run(
            [binary, "--help", dotted], exit=False
        )


@overload
def task(body: Callable[..., None], /) -> HubfleetTask: ...
@overload
def task(**kwargs: Any) -> Callable[[Callable[..., None]], HubfleetTask]: ...
def task(*args: Any, **kwargs: Any) -> Any:
    """`@task` / `@task(help=...)` making a HubfleetTask."""
    kwargs["klass"] = HubfleetTask
    return invoke_task(*args, **kwargs)


def walk(collection: Collection, prefix: str = "") -> Iterator[tuple[str, Task[Any]]]:
    """Every task of a namespace with its dotted name, as `invoke --list` names it."""
    for name in collection.task_names:
        yield f"{prefix}{name}", collection[name]


def name_tasks(namespace: Collection) -> Collection:
    """Tell every task its dotted name and namespace (for its --help); returns the namespace."""
    for dotted, found in walk(namespace):
        if isinstance(found, HubfleetTask):
            found.help_source = (namespace, dotted)
    return namespace
