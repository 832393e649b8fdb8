"""Every task behaves alike at the front: help three ways, the same short flags everywhere,
whole first sentences in `invoke --list`, and a flag-looking positional refused in one line.

Most checks run invoke's own Program in process on the namespace exactly as invoke's loader
builds it from tasks.py (fast, every task); a few run the real `invoke` command as well.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.collection import Collection
from invoke.program import Program

import tasks as tasks_py
from hubfleet.tasks import build_namespace
from hubfleet.tasks.conventions import SHORT_FLAGS, walk

PROJECT = Path(__file__).resolve().parent.parent
NAMESPACE = build_namespace()
TASKS = sorted(name for name, _ in walk(NAMESPACE))


def run_invoke(argv: list[str]) -> tuple[int, str, str]:
    """`invoke ARGV` in process, on the collection invoke's loader makes of tasks.py."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            Program(namespace=Collection.from_module(tasks_py), binary="invoke").run(
                ["invoke", *argv], exit=True
            )
        except SystemExit as done:
            code = int(done.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_every_task_is_listed() -> None:
    assert len(TASKS) >= 30
    for name in ("deploy", "validate", "member.onboard", "tofu.apply", "gpu.check"):
        assert name in TASKS


@pytest.mark.parametrize("name", TASKS)
def test_help_three_ways(name: str) -> None:
    shown = [run_invoke(argv) for argv in (["--help", name], [name, "--help"], [name, "-h"])]
    first = inspect.getdoc(NAMESPACE[name]).splitlines()[0]  # type: ignore[union-attr]
    for code, out, err in shown:
        assert (code, err) == (0, "")
        assert out.startswith(f"Usage: invoke [--core-opts] {name} ")
        assert first in out
        assert "-h, --help" in out
    assert shown[0][1] == shown[1][1] == shown[2][1]


@pytest.mark.parametrize("name", TASKS)
def test_short_flags_mean_the_same_everywhere(name: str) -> None:
    allowed = {"h": "help", **{letter: flag for flag, letter in SHORT_FLAGS.items()}}
    for arg in NAMESPACE[name].get_arguments():
        shorts = [n for n in arg.names if len(n) == 1]
        for letter in shorts:
            assert allowed.get(letter) == arg.name, f"{name}: -{letter} is --{arg.name}"
        if arg.name in SHORT_FLAGS:
            assert SHORT_FLAGS[arg.name] in shorts


@pytest.mark.parametrize("name", TASKS)
def test_list_shows_a_whole_first_sentence(name: str) -> None:
    doc = inspect.getdoc(NAMESPACE[name].body)
    assert doc, f"{name} has no docstring"
    first = doc.splitlines()[0]
    assert first.endswith("."), f"{name}: first line is not a whole sentence: {first!r}"
    assert len(first) <= 100


def test_list_output_keeps_sentences_whole() -> None:
    code, out, _ = run_invoke(["--list"])
    assert code == 0
    text = " ".join(out.split())
    for name in TASKS:
        first = inspect.getdoc(NAMESPACE[name].body).splitlines()[0]  # type: ignore[union-attr]
        assert " ".join(first.split()) in text


def test_a_flag_where_a_positional_belongs_is_one_line() -> None:
    code, out, err = run_invoke(["tofu.plan", "demo", "--nope"])
    assert (code, out) == (1, "")
    assert err == (
        "error: tofu.plan: '--nope' is not one of its flags, nor a value for STACK; "
        "for help run: invoke --help tofu.plan\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["deploy", "-h"],  # positional MEMBER missing
        ["member.onboard", "-h"],  # --host exists: -h used to be its short flag
        ["tofu.plan", "--help"],  # two positionals missing
        ["deploy", "demo", "--help"],  # positional given
    ],
)
def test_the_real_invoke_command_shows_help(argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", *argv],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"Usage: invoke [--core-opts] {argv[0]} [--options]")


def test_dry_run_and_yes_have_their_letters_on_the_real_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--help", "deploy"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
    )
    assert "-n, --dry-run" in done.stdout and "-y, --yes" in done.stdout
    assert "-d, " not in done.stdout


def readme_task_rows() -> list[str]:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Tasks\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_readme_task_table_is_one_table() -> None:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Tasks\n", 1)[1].split("\n## ", 1)[0]
    lines = section.strip("\n").splitlines()
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert table == list(range(table[0], table[0] + len(table))), "a blank line splits the table"
    assert lines[table[0] + 1].startswith("|---")


def readme_forms() -> list[str]:
    import re

    forms = []
    for row in readme_task_rows()[2:]:
        forms += re.findall(r"`(invoke [^`]+)`", row.split("|")[1])
    return forms


@pytest.mark.parametrize("form", readme_forms())
def test_each_readme_form_parses_as_written(form: str) -> None:
    """The form without its [optional] parts parses with invoke's own parser (placeholders as
    values), and every flag the form names, optional ones included, exists."""
    import re

    from invoke.parser import Parser

    words = form.replace("\\|", "|").split()[1:]
    name = words[0]
    assert name in TASKS, form
    required, depth = [], 0
    for word in words[1:]:
        depth += word.count("[")
        if depth == 0 and word != "...":
            required.append(word)
        depth -= word.count("]")
    parsed = Parser(contexts=NAMESPACE.to_contexts()).parse_argv([name, *required])
    assert [ctx.name for ctx in parsed] == [name]
    known = {n for arg in NAMESPACE[name].get_arguments() for n in arg.names}
    for flag in re.findall(r"--([a-z][a-z0-9-]*)", form):
        assert flag in known, f"{form}: no --{flag}"


def number_flags() -> list[tuple[str, str]]:
    found = []
    for name in TASKS:
        for arg in NAMESPACE[name].get_arguments():
            if arg.kind in (int, float) and not arg.positional:
                found.append((name, str(arg.names[0])))
    return found


@pytest.mark.parametrize(("name", "flag"), number_flags())
def test_a_number_flag_refuses_what_is_not_a_number_in_its_range(name: str, flag: str) -> None:
    from invoke.exceptions import ParseError
    from invoke.parser import Parser

    positionals = ["x"] * len(NAMESPACE[name].positional)

    def parse(value: str) -> None:
        Parser(contexts=NAMESPACE.to_contexts()).parse_argv(
            [name, *positionals, f"--{flag}={value}"]
        )

    for bad in ("abc", "1e23", "-5", "99999999999"):
        with pytest.raises(ParseError) as err:
            parse(bad)
        message = str(err.value)
        assert message.startswith(f"error: --{flag}: ") and "\n" not in message
    parse("22")  # in every flag's range


def test_a_bad_timeout_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "deploy", "demo", "--timeout", "abc"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: --timeout: 'abc' is not a whole number\n"
