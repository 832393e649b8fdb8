#!/usr/bin/python3 -S
# mypy: ignore-errors
# (a stand-in body: like the extensionless stand-ins, stdlib-only code run on test hosts, not type-checked)
"""systemctl stand-in for test hosts (they have no systemd of their own).

Like systemd 252: is-system-running, daemon-reload, enable/disable [--now], start, stop,
restart, try-restart, reload-or-restart, reload, is-active, is-enabled, is-failed, status,
show -p/--value, reset-failed, --version. Unit files are looked up in /etc/systemd/system,
/run/systemd/system, /lib/systemd/system and /usr/lib/systemd/system; an instance of a template
(wg-quick@wg0.service) uses its own file if there is one, else the template's
(wg-quick@.service), with the specifiers %i %I %n %N %p %P %% expanded in Exec*, Environment and
EnvironmentFile. Starting a unit whose ExecStart program is a hubfleet stand-in (k3s) runs that
program once with the unit's EnvironmentFile/Environment: for Type=notify the job waits for it
and fails when it exits non-zero (as systemd waits for READY=1); for Type=exec or simple the job
succeeds once the program is started and it runs on in the background (a supervisor records its
output in the journal and marks the unit failed when it exits non-zero; stop and restart end
it), as the k3s agent's unit does while it waits for its server. A Type=oneshot unit runs for real inside the host: start runs ExecStartPre, ExecStart
and ExecStartPost in order (stopping at the first failure, "-" prefixes ignore one), stop runs
ExecStop and ExecStopPost when the unit is active, restart does both, reload runs ExecReload;
the unit is active (exited) afterwards only with RemainAfterExit=yes, and a failing command fails
the job (exit 1, "Job for X failed ...") and leaves the unit failed. Commands get the unit's
environment, stdin /dev/null, cwd /, a session of their own, and their output goes to the
journal stand-in (as `systemd[1]` and the program's name). Leftover processes are not killed on
stop (there are no cgroups here). Other units only change state. Unit state, counters
(starts, restarts, stops) and daemon-reloads live in
/var/lib/hubfleet-standin/systemd/units.json; each unit's state is mirrored to the lab's shared
dir so other hosts (a k3s server listing its agents) can see it. Called as reboot, poweroff,
halt or shutdown (or with those verbs) it refuses: a test host cannot be rebooted.
"""

import contextlib
import os
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.realpath(__file__)), "/run/hubfleet-standins"]
import hubfleet_standin as standin  # noqa: E402

# loaded at first use (hubfleet_standin.lazy)
re = standin.lazy("re")
shlex = standin.lazy("shlex")
signal = standin.lazy("signal")
subprocess = standin.lazy("subprocess")
tempfile = standin.lazy("tempfile")

UNITS_FILE = standin.STATE + "/systemd/units.json"
JOURNAL_DIR = standin.STATE + "/journal"
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
MARKER = b"hubfleet-standin-service"
POWER = {"reboot", "poweroff", "halt", "shutdown", "kexec"}
MUTATING = {
    "daemon-reload",
    "enable",
    "disable",
    "start",
    "stop",
    "restart",
    "try-restart",
    "reload-or-restart",
    "reload",
    "reset-failed",
    "mask",
    "unmask",
    "condrestart",
}


def unit_name(arg):
    name = os.path.basename(arg) if arg.startswith("/") else arg
    return name if "." in name else name + ".service"


def template_name(unit):
    """wg-quick@wg0.service -> wg-quick@.service; None when unit is not a template instance."""
    base, dot, suffix = unit.rpartition(".")
    prefix, at, instance = base.partition("@")
    if not dot or not at or not instance:
        return None
    return f"{prefix}@.{suffix}"


def unit_file(unit):
    """The unit's own file, else (for an instance) its template's, as systemd looks them up."""
    for name in (unit, template_name(unit)):
        if name is None:
            continue
        for directory in UNIT_DIRS:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                return path
    return None


def unescape(text):
    """systemd's unit name unescaping: "-" is "/", "\\xNN" is that byte."""
    text = text.replace("-", "/")
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def specifiers(unit):
    base = unit.rpartition(".")[0] or unit
    prefix, _, instance = base.partition("@")
    return {
        "n": unit,
        "N": base,
        "p": prefix,
        "P": unescape(prefix),
        "i": instance,
        "I": unescape(instance),
        "%": "%",
    }


def expand(text, unit):
    """Expand %i, %I, %n, %N, %p, %P and %% (others are left as they are)."""
    table = specifiers(unit)
    return re.sub(r"%(.)", lambda m: table.get(m.group(1), m.group(0)), text)


def parse_unit(path):
    """{section: {key: [values]}} with continuation lines joined."""
    sections, current, pending = {}, None, ""
    with open(path) as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if pending:
                line = pending + " " + line.strip()
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                current = sections.setdefault(stripped[1:-1], {})
                continue
            key, sep, value = stripped.partition("=")
            if sep and current is not None:
                current.setdefault(key.strip(), []).append(value.strip())
    return sections


def env_file_values(path):
    values = {}
    try:
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if not line or line[0] in "#;" or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                parts = shlex.split(value) if value else [""]
                values[key.strip()] = parts[0] if parts else ""
    except OSError:
        return None
    return values


def load():
    return standin.read_json(UNITS_FILE, {"units": {}, "daemon_reloads": 0})


def save(state):
    standin.write_json(UNITS_FILE, state)
    write_answers(state)


def write_answers(state):
    """What the sh fast path answers to is-active (hubfleet_standin.sh): each unit's state."""
    standin.write_answer_set(
        "systemd",
        {unit: record.get("active", "inactive") for unit, record in state["units"].items()},
    )


def unit_record(state, unit):
    return state["units"].setdefault(
        unit,
        {
            "active": "inactive",
            "enabled": False,
            "starts": 0,
            "restarts": 0,
            "stops": 0,
            "since": None,
            "result": None,
        },
    )


def publish(state, unit):
    record = state["units"][unit]
    standin.mirror_unit(unit, {"active": record["active"], "since": record["since"]})


def standin_argv(sections):
    """The ExecStart argv when its program is a hubfleet stand-in, else None."""
    service = sections.get("Service", {})
    exec_start = (service.get("ExecStart") or [""])[-1]
    while exec_start[:1] in ("-", "@", "+", "!", ":"):
        exec_start = exec_start[1:]
    argv = shlex.split(exec_start)
    if not argv or not os.path.isfile(argv[0]):
        return None
    try:
        with open(argv[0], "rb") as handle:
            if MARKER not in handle.read(8192):
                return None
    except OSError:
        return None
    return argv


def waits_for_ready(sections):
    """Type=notify: the start job waits until the program is up (here: until it exits)."""
    return (sections.get("Service", {}).get("Type") or ["simple"])[-1] == "notify"


def run_exec_start(unit, path, sections, record):
    """Run a stand-in ExecStart; return (ok, output). Type=notify waits for it; exec and
    simple start it in the background under a supervisor and succeed at once."""
    argv = standin_argv(sections)
    if argv is None:
        return True, ""
    env, error = service_env(unit, sections.get("Service", {}))
    if error:
        return False, error
    if not waits_for_ready(sections):
        record["pid"] = start_supervisor(unit, argv, env)
        return True, ""
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd="/")
    output = proc.stdout + proc.stderr
    return proc.returncode == 0, output


def end_background(record):
    """Stop the program a Type=exec/simple start left running (its whole session)."""
    pid = record.pop("pid", None)
    if pid:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)


def start_supervisor(unit, argv, env):
    """Fork the supervisor of a Type=exec/simple unit (as systemd forks, rather than starting
    one more Python): its own session, /dev/null for its standard streams, no other inherited
    descriptor (a command's pipe left open would keep its caller waiting), the unit's
    environment. Returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir("/")
        os.environ.clear()
        os.environ.update(env)
        code = supervise(unit, argv)
    finally:
        os._exit(code if isinstance(code, int) else 1)


def supervise(unit, argv):
    """Run a unit's program in the background: its output to the journal; a non-zero exit
    marks the unit failed, unless it was stopped or restarted meanwhile."""
    proc = subprocess.run(argv, capture_output=True, text=True, cwd="/")
    journal(unit, proc.stdout + proc.stderr)
    if proc.returncode == 0:
        return 0
    with standin.locked("systemd"):
        state = load()
        record = state["units"].get(unit)
        if record and record.get("pid") == os.getpid() and record["active"] == "active":
            record.pop("pid")
            record["active"] = "failed"
            record["result"] = "exit-code"
            publish(state, unit)
            save(state)
    journal(
        unit,
        f"{unit}: Main process exited, code=exited, status={proc.returncode}/FAILURE",
        "systemd",
        1,
    )
    return proc.returncode


def service_env(unit, service):
    """The environment of the unit's commands, or (None, error) when an EnvironmentFile fails."""
    env = {
        "PATH": standin.BASE_PATH,
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "HUBFLEET_STANDIN_UNIT": unit,
        "INVOCATION_ID": os.urandom(16).hex(),
    }
    for item in service.get("EnvironmentFile", []):
        optional = item.startswith("-")
        file_path = expand(item.lstrip("-"), unit)
        values = env_file_values(file_path)
        if values is None and not optional:
            return None, f"Failed to load environment files: {file_path}\n"
        env.update(values or {})
    for item in service.get("Environment", []):
        for pair in shlex.split(expand(item, unit)):
            key, _, value = pair.partition("=")
            env[key] = value
    return env, ""


def commands(service, key):
    """A setting's command lines; an empty assignment resets the list, as in systemd."""
    lines = []
    for value in service.get(key, []):
        lines = [] if not value else [*lines, value]
    return lines


def is_oneshot(sections):
    return (sections.get("Service", {}).get("Type") or ["simple"])[-1] == "oneshot"


def remains(sections):
    value = (sections.get("Service", {}).get("RemainAfterExit") or ["no"])[-1]
    return value.lower() in ("yes", "true", "on", "1")


def description(unit, sections):
    text = (sections.get("Unit", {}).get("Description") or [""])[-1]
    return f"{unit} - {expand(text, unit)}" if text else unit


def substitute(argv, env):
    """systemd's $VAR (a word of its own: split on whitespace) and ${VAR} substitution."""
    out = []
    for word in argv:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            out += env.get(whole.group(1), "").split()
            continue
        out.append(
            re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word)
        )
    return out


def run_command(unit, line, env):
    """Run one Exec* line for real; returns (ok, status): ok also when "-" ignores a failure."""
    flags = ""
    while line[:1] in ("-", "@", "+", "!", ":"):
        flags, line = flags + line[0], line[1:]
    line = expand(line, unit)
    argv = shlex.split(line)
    if ":" not in flags:
        argv = substitute(argv, env)
    if not argv:
        return True, 0
    executable = argv[0]
    if "@" in flags:
        argv = argv[1:]
    ident = os.path.basename(executable)
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                argv,
                executable=executable,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,
                timeout=300,
            )
            code = proc.returncode
        except OSError as err:
            journal(unit, f"Failed to execute {executable}: {err.strerror}", "systemd", 1)
            code = 203
        except subprocess.TimeoutExpired:
            code = -9
        out.seek(0)
        journal(unit, out.read().decode(errors="replace"), ident)
    if code != 0:
        status = f"status={code}/FAILURE" if code > 0 else f"signal={-code}"
        kind = "exited" if code > 0 else "killed"
        journal(unit, f"{unit}: Control process exited, code={kind}, {status}", "systemd", 1)
    return code == 0 or "-" in flags, code


def run_oneshot(unit, sections, keys):
    """Run the command lines of the given settings in order; False at the first failure."""
    service = sections.get("Service", {})
    env, error = service_env(unit, service)
    if error:
        journal(unit, f"{unit}: {error.strip()}", "systemd", 1)
        return False
    for key in keys:
        for line in commands(service, key):
            ok, _ = run_command(unit, line, env)
            if not ok:
                return False
    return True


def oneshot_stop(unit, sections):
    journal(unit, f"Stopping {description(unit, sections)}...", "systemd", 1)
    ok = run_oneshot(unit, sections, ("ExecStop",))
    ok = run_oneshot(unit, sections, ("ExecStopPost",)) and ok
    if ok:
        journal(unit, f"{unit}: Deactivated successfully.", "systemd", 1)
        journal(unit, f"Stopped {description(unit, sections)}.", "systemd", 1)
    else:
        journal(unit, f"{unit}: Failed with result 'exit-code'.", "systemd", 1)
    return ok


def oneshot_start(unit, sections):
    journal(unit, f"Starting {description(unit, sections)}...", "systemd", 1)
    if run_oneshot(unit, sections, ("ExecStartPre", "ExecStart", "ExecStartPost")):
        journal(unit, f"Finished {description(unit, sections)}.", "systemd", 1)
        return True
    run_oneshot(unit, sections, ("ExecStopPost",))
    journal(unit, f"{unit}: Failed with result 'exit-code'.", "systemd", 1)
    journal(unit, f"Failed to start {description(unit, sections)}.", "systemd", 1)
    return False


def journal(unit, text, ident=None, pid=None):
    if not text:
        return
    os.makedirs(JOURNAL_DIR, exist_ok=True)
    stamp = time.strftime("%b %d %H:%M:%S")
    host = standin.host_name()
    ident = ident or unit.rsplit(".", 1)[0]
    pid = pid or os.getpid()
    with open(os.path.join(JOURNAL_DIR, unit + ".log"), "a") as out:
        for line in text.splitlines():
            out.write(f"{stamp} {host} {ident}[{pid}]: {line}\n")


def start(state, unit, verb):
    """Start (or restart) one unit; returns an exit code."""
    path = unit_file(unit)
    if path is None:
        print(f"Failed to {verb} {unit}: Unit {unit} not found.", file=sys.stderr)
        return 5
    record = unit_record(state, unit)
    was_active = record["active"] == "active"
    if verb in ("try-restart", "condrestart") and not was_active:
        return 0
    if verb in ("restart", "try-restart", "reload-or-restart", "condrestart"):
        record["restarts"] += 1
    elif was_active:
        return 0
    sections = parse_unit(path)
    oneshot = is_oneshot(sections)
    if was_active:
        record["stops"] += 1
        if oneshot:
            oneshot_stop(unit, sections)
    end_background(record)
    if oneshot:
        ok = oneshot_start(unit, sections)
    else:
        ok, output = run_exec_start(unit, path, sections, record)
        journal(unit, output)
    record["starts"] += 1
    record["since"] = round(time.time(), 3)
    if not ok:
        record["active"] = "failed"
        record["result"] = "exit-code"
        publish(state, unit)
        print(
            f"Job for {unit} failed because the control process exited with error code.\n"
            f'See "systemctl status {unit}" and "journalctl -xeu {unit}" for details.',
            file=sys.stderr,
        )
        return 1
    record["active"] = "active" if not oneshot or remains(sections) else "inactive"
    record["result"] = "success"
    publish(state, unit)
    return 0


def reload(unit):
    """Run a oneshot unit's ExecReload (other units: nothing to do); returns an exit code."""
    path = unit_file(unit)
    sections = parse_unit(path) if path else {}
    if not is_oneshot(sections) or not commands(sections.get("Service", {}), "ExecReload"):
        return 0
    journal(unit, f"Reloading {description(unit, sections)}...", "systemd", 1)
    if run_oneshot(unit, sections, ("ExecReload",)):
        journal(unit, f"Reloaded {description(unit, sections)}.", "systemd", 1)
        return 0
    print(
        f"Job for {unit} failed because the control process exited with error code.\n"
        f'See "systemctl status {unit}" and "journalctl -xeu {unit}" for details.',
        file=sys.stderr,
    )
    return 1


def stop(state, unit):
    path = unit_file(unit)
    if path is None and unit not in state["units"]:
        print(f"Failed to stop {unit}: Unit {unit} not loaded.", file=sys.stderr)
        return 5
    record = unit_record(state, unit)
    final = "inactive"
    end_background(record)
    if record["active"] == "active":
        record["stops"] += 1
        sections = parse_unit(path) if path else {}
        if is_oneshot(sections) and not oneshot_stop(unit, sections):
            final = "failed"
            record["result"] = "exit-code"
    record["active"] = final
    record["since"] = round(time.time(), 3)
    publish(state, unit)
    return 0


def wanted_by(path):
    values = parse_unit(path).get("Install", {}).get("WantedBy", [])
    return [t for v in values for t in v.split()]


def enable(state, unit, arg):
    path = arg if arg.startswith("/") and os.path.exists(arg) else unit_file(unit)
    if path is None:
        print(f"Failed to enable unit: Unit file {unit} does not exist.", file=sys.stderr)
        return 1
    record = unit_record(state, unit)
    for target in wanted_by(path):
        link = f"/etc/systemd/system/{target}.wants/{unit}"
        if not os.path.islink(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(path, link)
            print(f"Created symlink {link} \u2192 {path}.", file=sys.stderr)
    record["enabled"] = True
    return 0


def disable(state, unit):
    path = unit_file(unit)
    if path is None and unit not in state["units"]:
        print(f"Failed to disable unit: Unit file {unit} does not exist.", file=sys.stderr)
        return 1
    for directory in (
        os.listdir("/etc/systemd/system") if os.path.isdir("/etc/systemd/system") else []
    ):
        link = f"/etc/systemd/system/{directory}/{unit}"
        if directory.endswith(".wants") and os.path.islink(link):
            os.unlink(link)
            print(f'Removed "{link}".', file=sys.stderr)
    unit_record(state, unit)["enabled"] = False
    return 0


def sub_state(path, active):
    if active == "active" and path and is_oneshot(parse_unit(path)):
        return "exited"
    return {"active": "running", "failed": "failed"}.get(active, "dead")


def show(state, unit, properties, value_only):
    path = unit_file(unit)
    record = state["units"].get(unit, {})
    active = record.get("active", "inactive")
    all_props = {
        "Id": unit,
        "LoadState": "loaded" if path else "not-found",
        "ActiveState": active,
        "SubState": sub_state(path, active),
        "UnitFileState": ("enabled" if record.get("enabled") else "disabled") if path else "",
        "FragmentPath": path or "",
        "NRestarts": str(record.get("restarts", 0)),
        "MainPID": "0",
        "Result": record.get("result") or "success",
    }
    wanted = properties or list(all_props)
    for prop in wanted:
        value = all_props.get(prop, "")
        print(value if value_only else f"{prop}={value}")
    return 0


def status(state, unit):
    path = unit_file(unit)
    if path is None:
        print(f"Unit {unit} could not be found.", file=sys.stderr)
        return 4
    record = state["units"].get(unit, {})
    active = record.get("active", "inactive")
    enabled = "enabled" if record.get("enabled") else "disabled"
    sub = sub_state(path, active)
    dot = "\u25cf" if active == "active" else "\u25cb"
    print(f"{dot} {unit}")
    print(f"     Loaded: loaded ({path}; {enabled}; preset: enabled)")
    print(f"     Active: {active} ({sub})")
    return 0 if active == "active" else 3


def main(argv):
    prog = os.path.basename(sys.argv[0])
    if argv[:1] == ["__standin_supervise__"]:
        return supervise(argv[1], argv[2:])
    standin.record()
    if prog in POWER:
        print(
            f"{prog}: refused by the hubfleet stand-in: a test host cannot be rebooted or powered off",
            file=sys.stderr,
        )
        return 1
    props, value_only, quiet, now = [], "--value" in argv, False, "--now" in argv
    rest = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("-p", "--property"):
            props += argv[i + 1].split(",") if i + 1 < len(argv) else []
            skip = True
        elif arg.startswith("--property="):
            props += arg.split("=", 1)[1].split(",")
        elif arg.startswith("-p") and len(arg) > 2:
            props += arg[2:].split(",")
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg == "--version":
            print(
                "systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP"
            )
            return 0
        elif not arg.startswith("-"):
            rest.append(arg)
    if not rest:
        rest = ["list-units"]
    verb, args = rest[0], rest[1:]
    if verb in POWER:
        print(
            f"systemctl {verb}: refused by the hubfleet stand-in: a test host cannot be rebooted or powered off",
            file=sys.stderr,
        )
        return 1
    if verb == "is-system-running":
        state_text = standin.options().get("systemd_state", "running")
        if not quiet:
            print(state_text)
        return 0 if state_text == "running" else 1
    if verb in MUTATING and not standin.is_root():
        unit = unit_name(args[0]) if args else ""
        print(f"Failed to {verb} {unit}: Interactive authentication required.", file=sys.stderr)
        print(f"See system logs and 'systemctl status {unit}' for details.", file=sys.stderr)
        return 1
    with standin.locked("systemd"):
        state = load()
        code = dispatch(state, verb, args, props, value_only, quiet, now)
        if verb in MUTATING or verb == "status":
            save(state)
        elif not standin.has_answers("systemd"):
            write_answers(state)
    return code


def dispatch(state, verb, args, props, value_only, quiet, now):
    units = [(unit_name(a), a) for a in args]
    if verb == "daemon-reload":
        state["daemon_reloads"] = state.get("daemon_reloads", 0) + 1
        return 0
    if verb in ("start", "restart", "try-restart", "reload-or-restart", "condrestart", "reload"):
        if not units:
            print("Too few arguments.", file=sys.stderr)
            return 1
        code = 0
        for unit, _ in units:
            action = "restart" if verb == "reload-or-restart" else verb
            if verb == "reload":
                if state["units"].get(unit, {}).get("active") != "active":
                    print(
                        f"Failed to reload {unit}: Job type reload is not applicable for unit {unit}.",
                        file=sys.stderr,
                    )
                    code = 1
                else:
                    code = reload(unit) or code
                continue
            code = start(state, unit, action) or code
        return code
    if verb == "stop":
        code = 0
        for unit, _ in units:
            code = stop(state, unit) or code
        return code
    if verb == "enable":
        code = 0
        for unit, arg in units:
            code = enable(state, unit, arg) or code
            if now and not code:
                code = start(state, unit, "start") or code
        return code
    if verb == "disable":
        code = 0
        for unit, _ in units:
            code = disable(state, unit) or code
            if now and not code:
                code = stop(state, unit) or code
        return code
    if verb in ("mask", "unmask"):
        return 0
    if verb == "reset-failed":
        for unit, _ in units or [(u, u) for u in state["units"]]:
            record = state["units"].get(unit)
            if record and record["active"] == "failed":
                record["active"] = "inactive"
                publish(state, unit)
        return 0
    if verb == "is-active":
        code = 3
        all_active = bool(units)
        for unit, _ in units:
            active = state["units"].get(unit, {}).get("active", "inactive")
            all_active = all_active and active == "active"
            if not quiet:
                print(active)
        if all_active:
            code = 0
        return code
    if verb == "is-failed":
        failed = any(state["units"].get(u, {}).get("active") == "failed" for u, _ in units)
        if not quiet:
            for unit, _ in units:
                print(state["units"].get(unit, {}).get("active", "inactive"))
        return 0 if failed else 1
    if verb == "is-enabled":
        code = 1
        for unit, _ in units:
            if unit_file(unit) is None:
                print(
                    f"Failed to get unit file state for {unit}: No such file or directory",
                    file=sys.stderr,
                )
                continue
            enabled = state["units"].get(unit, {}).get("enabled", False)
            if not quiet:
                print("enabled" if enabled else "disabled")
            if enabled:
                code = 0
        return code
    if verb == "show":
        code = 0
        for unit, _ in units or [("", "")]:
            code = show(state, unit, props, value_only) or code
        return code
    if verb == "status":
        code = 0
        for unit, _ in units:
            code = status(state, unit) or code
        return code
    if verb in ("list-units", "list-unit-files"):
        for unit, record in sorted(state["units"].items()):
            print(f"{unit} {record['active']} {'enabled' if record['enabled'] else 'disabled'}")
        return 0
    print(f'Unknown command verb "{verb}".', file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
