"""Read variables from a shell file such as `blimp-vars.sh`.

The file is real shell (`export X=...`, `NODE=$(hostname)`, quoting, `if`), so
rather than parse it we let `/bin/bash` source it and report the result:

* bash runs as `bash --noprofile --norc -c SCRIPT bash FILE`: the path reaches
  the script as `$1` and is never pasted into shell code. It is made absolute
  first, because `source name` without a slash would search `$PATH`. Only
  our own path of `env` is pasted in, quoted, so the file cannot redirect it
  by changing PATH or `set --`.
* The environment is minimal and fixed (a standard `PATH`, plus `HOME`,
  `USER` and `LOGNAME` when we have them), so nothing from the caller leaks
  into the result and `BASH_ENV` and friends cannot run other code.
* One bash process prints its environment with `env -0` before and after
  `set -a; source "$1"`; `set -a` exports plain assignments too. The result
  is every variable the file set to a new value, compared with that
  baseline. Shell bookkeeping (`_`, `SHLVL`, `PWD`, `OLDPWD`), exported
  functions and arrays (which cannot be exported) are not reported, nor are
  variables the file unsets.
* The file's own stdout goes to stderr; our dumps go through fd 3, which the
  file does not inherit. stdin is /dev/null, so `read` cannot hang.
* Sourcing must return 0: a syntax error, a failing last command or
  `return 1` is an error, with bash's last stderr line in the message (and
  the line before it for a syntax error, which bash reports on two). A
  file that calls `exit` (even `exit 0`) is an error too, since it would
  end the shell of anyone who sources it.
* bash gets 10 s; it runs in its own session so a timeout kills its whole
  process group, command substitutions included.

Names and values are decoded like `os.fsdecode` (UTF-8, surrogateescape).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

from chute.errors import UsageError

BASH = "/bin/bash"
TIMEOUT_SECONDS = 10.0
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSED_THROUGH = ("HOME", "USER", "LOGNAME")
_IGNORED = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# $1 is the file; {env} is replaced by the quoted path of `env`, fixed before the file
# can touch PATH or the positional parameters. Each dump ends with an empty record.
_SCRIPT = """\
exec 3>&1 1>&2
{env} -0 >&3 && builtin printf '\\0' >&3 || exit
set -a
builtin source "$1" 3>&- || exit
set +a
{env} -0 >&3 && builtin printf '\\0' >&3
"""


def _env_binary() -> str:
    """Return the path of `env`, which the file may hide by changing PATH."""
    for candidate in ("/usr/bin/env", "/bin/env"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise UsageError("cannot read vars files: no env binary in /usr/bin or /bin")


def _base_environment() -> dict[str, str]:
    """Return the environment bash starts with."""
    env = {"PATH": _BASE_PATH}
    for name in _PASSED_THROUGH:
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    return env


def _parse_dumps(output: bytes) -> list[dict[str, str]]:
    """Split `env -0` dumps, each ended by an empty record, into dicts."""
    dumps: list[dict[str, str]] = []
    current: dict[str, str] = {}
    records = output.split(b"\0")
    for record in records[:-1]:  # the last piece follows the final NUL
        if not record:
            dumps.append(current)
            current = {}
            continue
        name, _, value = os.fsdecode(record).partition("=")
        current[name] = value
    return dumps


def _last_line(stderr: bytes) -> str:
    """Return the last non-blank line of bash's stderr (two for a syntax error), or ''."""
    lines = [line.strip() for line in os.fsdecode(stderr).splitlines() if line.strip()]
    if len(lines) >= 2 and "syntax error" in lines[-2]:
        return f"{lines[-2]} {lines[-1]}"  # bash puts the offending line after the reason
    return lines[-1] if lines else ""


def read_vars_file(path: Path) -> dict[str, str]:
    """Source a shell variables file with bash; return the variables it sets."""
    shown = repr(os.fspath(path))
    absolute = os.path.abspath(path)
    if not os.path.exists(absolute):
        raise UsageError(f"vars file {shown} does not exist")
    script = _SCRIPT.format(env=shlex.quote(_env_binary()))
    command = [BASH, "--noprofile", "--norc", "-c", script, "bash", absolute]
    try:
        proc = subprocess.Popen(
            command,
            env=_base_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise UsageError(f"cannot run {BASH} to read vars file {shown}: {exc.strerror}") from None
    with proc:
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise UsageError(
                f"vars file {shown} took longer than {TIMEOUT_SECONDS:g} s to run"
            ) from None
    dumps = _parse_dumps(stdout)
    if proc.returncode != 0 or len(dumps) != 2:
        if proc.returncode != 0:
            problem = f"failed (bash exit status {proc.returncode})"
        else:
            problem = "called exit instead of running to its end"
        detail = _last_line(stderr)
        raise UsageError(f"vars file {shown} {problem}" + (f": {detail}" if detail else ""))
    before, after = dumps
    return {
        name: value
        for name, value in after.items()
        if before.get(name) != value and name not in _IGNORED and _NAME_RE.fullmatch(name)
    }
