"""The backup programs compared, each behind the same small interface.

Every tool gets its own folder per repository (`Place`): the repository, a
HOME with XDG folders for its caches and keys, and a TMPDIR, all on the
scratch file system. Secrets go through the environment: a generated key
file for chute, RESTIC_PASSWORD for restic, BORG_PASSPHRASE for borg.
"""

from __future__ import annotations

import compileall
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

PASSWORD = "chute-bench-password"
APT_PACKAGES = {"restic": "restic", "borg": "borgbackup"}
_FOREIGN_ENV = ("CHUTE_", "RESTIC_", "BORG_")


@dataclass(frozen=True)
class Command:
    """A command line and the folder to run it in."""

    argv: tuple[str, ...]
    cwd: Path | None = None


@dataclass(frozen=True)
class Place:
    """Where one tool keeps one repository and its local state."""

    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def prepare(self) -> None:
        """Create the HOME and TMPDIR folders (the repository is the tool's to create)."""
        for sub in ("home/.config", "home/.cache", "home/.local/share", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)


class Tool(ABC):
    """A backup program driven from the command line."""

    name: str

    @property
    @abstractmethod
    def settings(self) -> str:
        """Say how the tool is configured: secrets, key derivation, compression."""

    def env(self, place: Place) -> dict[str, str]:
        """Return the environment for commands on `place`: isolated HOME and secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
        env.update(
            HOME=str(place.home),
            XDG_CONFIG_HOME=str(place.home / ".config"),
            XDG_CACHE_HOME=str(place.home / ".cache"),
            XDG_DATA_HOME=str(place.home / ".local/share"),
            TMPDIR=str(place.root / "tmp"),
        )
        env.update(self.secrets(place))
        return env

    @abstractmethod
    def secrets(self, place: Place) -> dict[str, str]:
        """Return the variables that name the repository and open it."""

    @abstractmethod
    def version(self) -> str:
        """Return the program's name and version."""

    @abstractmethod
    def init(self, place: Place) -> Command:
        """Create the repository."""

    @abstractmethod
    def backup(self, place: Place, source: Path, snapshot: str) -> Command:
        """Back up `source` as a snapshot (named `snapshot` where the tool names them)."""

    @abstractmethod
    def restore(self, place: Place, target: Path, snapshot: str) -> Command:
        """Restore the latest snapshot (named `snapshot`) into the existing folder `target`."""

    @abstractmethod
    def restored_root(self, target: Path, source: Path) -> Path:
        """Where the restore into `target` puts the tree backed up from `source`."""

    @abstractmethod
    def find(self, place: Place, name: str) -> Command:
        """List the files called `name` in every snapshot, one path per line."""

    @property
    def find_per_snapshot(self) -> bool:
        """Tell whether `find` lists a path once per snapshot (not once per version)."""
        return True

    def graph_seconds(self, output: str) -> float | None:
        """Return how long a backup spent recording its history graph, from its output.

        Only chute keeps such a graph; for the others, None.
        """
        return None


def _output(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip()


def _below(target: Path, source: Path) -> Path:
    return target / source.relative_to(source.anchor)


class Chute(Tool):
    name = "chute"

    def __init__(self, binary: str) -> None:
        self.binary = binary

    @staticmethod
    def locate() -> str | None:
        """Find the `chute` script of the running environment, else one on PATH."""
        beside = Path(sys.executable).with_name("chute")
        return str(beside) if beside.exists() else shutil.which("chute")

    def compile(self) -> bool:
        """Byte-compile the package the measured script runs, as a regular install does.

        Only for the running environment's script: its package is this one. An
        editable install (the project's .venv) leaves compiling to the first
        import, and with PYTHONDONTWRITEBYTECODE set every measured command would
        compile chute again (~0.1 s each), which restic (Go) and borg (a distribution
        package, compiled when installed) never pay. False if a file would not compile.
        """
        if self.binary != str(Path(sys.executable).with_name("chute")):
            return True  # another environment's chute: compiled when it was installed
        package = Path(__file__).resolve().parents[1]
        return bool(compileall.compile_dir(package, quiet=1))

    @property
    def settings(self) -> str:
        return "generated key file (no passphrase KDF), default compression"

    def secrets(self, place: Place) -> dict[str, str]:
        return {
            "CHUTE_REPO": str(place.repo),
            "CHUTE_KEY_FILE": str(place.root / "key"),
            "CHUTE_DOMAIN": "bench.example",
            "CHUTE_NODE": "bench",
        }

    def version(self) -> str:
        return _output(self.binary, "--version")

    @cached_property
    def has_find(self) -> bool:
        """Tell whether this chute has a `find` command (else a SPARQL query is used)."""
        text = _output(self.binary, "--help")
        commands = text.partition("Commands:")[2].splitlines()
        return any(line.split()[:1] == ["find"] for line in commands)

    def init(self, place: Place) -> Command:
        return Command((self.binary, "init", "--generate-key"))

    def backup(self, place: Place, source: Path, snapshot: str) -> Command:
        return Command((self.binary, "put", str(source), "--json"))

    def graph_seconds(self, output: str) -> float | None:
        try:
            seconds = json.loads(output)["graph_seconds"]
        except (ValueError, KeyError, TypeError):
            return None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return None
        return float(seconds)

    def restore(self, place: Place, target: Path, snapshot: str) -> Command:
        return Command((self.binary, "get", "latest", "--target", str(target), "--json"))

    def restored_root(self, target: Path, source: Path) -> Path:
        return target / source.name

    @property
    def find_per_snapshot(self) -> bool:
        return not self.has_find

    def find(self, place: Place, name: str) -> Command:
        if self.has_find:  # the file name as a glob, one line per snapshot holding it
            return Command((self.binary, "find", "--each", glob.escape(name)))
        literal = name.replace("\\", "\\\\").replace('"', '\\"')
        query = (
            "SELECT ?snapshot ?path WHERE { "
            f'?f nfo:fileName "{literal}" ; chute:path ?path . '
            "?snapshot chute:root/chute:contains+ ?f . }"
        )
        return Command((self.binary, "query", "--format", "csv", query))


class Restic(Tool):
    name = "restic"

    @property
    def settings(self) -> str:
        return "password (scrypt, calibrated at init), default compression"

    def secrets(self, place: Place) -> dict[str, str]:
        return {"RESTIC_REPOSITORY": str(place.repo), "RESTIC_PASSWORD": PASSWORD}

    def version(self) -> str:
        return " ".join(_output("restic", "version").split()[:2])

    def init(self, place: Place) -> Command:
        return Command(("restic", "init"))

    def backup(self, place: Place, source: Path, snapshot: str) -> Command:
        return Command(("restic", "backup", "--json", str(source)))

    def restore(self, place: Place, target: Path, snapshot: str) -> Command:
        return Command(("restic", "restore", "latest", "--target", str(target)))

    def restored_root(self, target: Path, source: Path) -> Path:
        return _below(target, source)

    def find(self, place: Place, name: str) -> Command:
        return Command(("restic", "find", name))


class Borg(Tool):
    name = "borg"

    def secrets(self, place: Place) -> dict[str, str]:
        return {
            "BORG_REPO": str(place.repo),
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_DISPLAY_PASSPHRASE": "no",
        }

    def version(self) -> str:
        return _output("borg", "--version")

    @cached_property
    def encryption(self) -> str:
        """The strongest repokey mode this borg offers."""
        offered = _output("borg", "init", "--help")
        return "repokey-blake2" if "repokey-blake2" in offered else "repokey"

    @property
    def settings(self) -> str:
        return f"--encryption {self.encryption}, passphrase (PBKDF2), default compression"

    def init(self, place: Place) -> Command:
        return Command(("borg", "init", "--encryption", self.encryption))

    def backup(self, place: Place, source: Path, snapshot: str) -> Command:
        return Command(("borg", "create", f"::{snapshot}", str(source)))

    def restore(self, place: Place, target: Path, snapshot: str) -> Command:
        return Command(("borg", "extract", f"::{snapshot}"), cwd=target)

    def restored_root(self, target: Path, source: Path) -> Path:
        return _below(target, source)

    def find(self, place: Place, name: str) -> Command:
        pattern = "/" + name.replace(".", "\\.") + "$"
        script = (
            "set -euo pipefail; archives=$(borg list --short); "
            'for a in $archives; do borg list "::$a"; done '
            f"| {{ grep -- {shlex.quote(pattern)} || true; }}"
        )
        return Command(("bash", "-c", script))


def install_missing(names: list[str], allowed: bool, say: Callable[[str], None]) -> None:
    """Install restic and borg from Debian packages when missing (root and apt-get only)."""
    missing = [APT_PACKAGES[n] for n in names if n in APT_PACKAGES and not _on_path(n)]
    if not missing:
        return
    if not allowed:
        say(f"not installing {' '.join(missing)} (--no-install)")
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        say(f"cannot install {' '.join(missing)}: needs root and apt-get")
        return
    say(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-q", *missing]
    if subprocess.run(argv, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(argv, env=env, check=False)


def _on_path(name: str) -> bool:
    return shutil.which(name) is not None


def available(names: list[str], say: Callable[[str], None]) -> list[Tool]:
    """Return the tools among `names` that can run here, in the order given."""
    tools: list[Tool] = []
    for name in names:
        if name == "chute":
            binary = Chute.locate()
            if binary is None:
                say("skipping chute: no chute command found")
            else:
                chute = Chute(binary)
                if not chute.compile():
                    say("WARNING: chute's package did not byte-compile: each command compiles it")
                tools.append(chute)
        elif not _on_path(name):
            say(f"skipping {name}: not installed")
        elif name == "borg" and not _output("borg", "--version").startswith("borg 1."):
            say("skipping borg: only borg 1.x command lines are supported")
        else:
            tools.append(Restic() if name == "restic" else Borg())
    return tools
