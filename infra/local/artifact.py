"""The deploy artifact as it runs in production: this project's wheel, installed in a clean
virtualenv outside the checkout, each entry point served by that virtualenv's
functions-framework from the installed main.py (what Google's Python buildpack runs).

The checkout's own root is always importable from the checkout, so nothing else shows
whether the wheel holds every module and data file the functions need;
tests/integration/test_package_artifact.py uses this to prove it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.local.stack import RunningFunction

ROOT = Path(__file__).resolve().parents[2]

# Never part of a build. A build/ or *.egg-info left by an earlier in-tree build would
# also put modules the tree no longer has into the wheel (setuptools reuses build/lib).
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".dev",
    ".terraform",
    ".hypothesis",
    ".*_cache",
    "__pycache__",
    "build",
    "dist",
    "*.egg-info",
)


class ArtifactError(RuntimeError):
    """A build, install or server start failed; the message carries the tool's output."""


def _run(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - argv built here, no shell
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ArtifactError(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


@dataclass(frozen=True)
class Built:
    wheel: Path
    # The copy of the tree the wheel was built from: what the wheel must hold.
    source: Path


def build_wheel(out_dir: Path, root: Path = ROOT) -> Built:
    """Build the wheel from a copy of the tree as it is now, committed or not.

    The copy keeps the build from writing build/ and *.egg-info into the checkout, where
    someone else may be working, and pins what was built while the tree moves on.
    """
    source = out_dir / "source"
    shutil.copytree(root, source, ignore=_NOT_SOURCE, symlinks=True)
    dist = out_dir / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        cwd=out_dir,
    )
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise ArtifactError(f"expected one wheel in {dist}, found {[w.name for w in wheels]}")
    return Built(wheels[0], source)


def default_wheelhouse() -> Path:
    # Outside any checkout, so every clone on the machine shares the downloaded wheels.
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dataface-billing" / "wheelhouse"


@dataclass(frozen=True)
class Venv:
    path: Path
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.path / "bin" / name


@dataclass(frozen=True)
class Installed:
    venv: Venv
    seconds_venv: float
    seconds_install: float
    refilled_wheelhouse: bool


def install_clean(wheel: Path, venv_dir: Path, wheelhouse: Path | None = None) -> Installed:
    """A new virtualenv (no system site-packages) with the wheel and its dependencies.

    Dependencies come from the wheelhouse with the index switched off (a few seconds
    instead of half a minute of resolving); when it lacks one (first run, a changed
    requirement) it is refilled from the registry and the install is repeated.
    """
    wheelhouse = wheelhouse or default_wheelhouse()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # No pip inside: the outer pip installs into it (--python), which saves the
    # ensurepip step and leaves nothing in it but the artifact and its dependencies.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], cwd=venv_dir.parent)
    purelib = _run(
        [
            str(venv_dir / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        cwd=venv_dir,
    ).strip()
    venv = Venv(venv_dir, Path(purelib))
    made = time.monotonic()
    pip = [sys.executable, "-m", "pip", "--python", str(venv.python)]
    offline = [*pip, "install", "--no-index", "--find-links", str(wheelhouse), str(wheel)]
    refilled = False
    try:
        _run(offline, cwd=venv_dir)
    except ArtifactError:
        refilled = True
        _run(
            [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(wheelhouse), str(wheel)],
            cwd=venv_dir,
        )
        # Only dependencies belong there; a stale copy of our own wheel would be found by
        # a later offline install instead of the one just built.
        (wheelhouse / wheel.name).unlink(missing_ok=True)
        _run(offline, cwd=venv_dir)
    return Installed(venv, made - started, time.monotonic() - made, refilled)


def clean_env(venv: Venv, extra: Mapping[str, str]) -> dict[str, str]:
    """What a function process gets: the venv first on PATH and the app's configuration,
    nothing from the caller's environment (no PYTHONPATH, no VIRTUAL_ENV)."""
    return {
        "PATH": f"{venv.path / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        # No operator's gcloud credentials or user configuration: against the emulators
        # the functions must need none.
        "HOME": str(venv.path),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def imported_from(
    venv: Venv, modules: Sequence[str], env: Mapping[str, str], cwd: Path
) -> dict[str, str]:
    """Where the venv's interpreter finds each module, run as the servers run."""
    code = (
        "import importlib, json, sys\n"
        "print(json.dumps({m: importlib.import_module(m).__file__ for m in sys.argv[1:]}))"
    )
    out = _run([str(venv.python), "-c", code, *modules], cwd=cwd, env=env)
    found: dict[str, str] = json.loads(out)
    return found


# With PYTHONVERBOSE the interpreter names the file behind every module it loads; a
# function process's own trace is what proves it ran the installed copy.
_TRACE_LOADED = re.compile(
    r"^# (?:code object from '?(?P<code>[^']+?)'?|extension module '[^']+' loaded from "
    r"'(?P<ext>[^']+)')$"
)

# What else PYTHONVERBOSE prints: imports, site-packages processing, the banner.
_TRACE_LINE = re.compile(
    r"^(?:# |import \S+ # |Processing |Adding directory: |Python \d+\.\d+\.\d+ |Type \"help\")"
)


def _is_trace(line: str) -> bool:
    return bool(_TRACE_LINE.match(line))


class InstalledFunction(RunningFunction):
    """A function served from the installed wheel; its log also holds Python's import
    trace, which tells what the process loaded."""

    def output(self) -> str:
        """The process's own output (the JSON logs), without the import trace."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if not _is_trace(line))

    def loaded_files(self) -> list[Path]:
        """Every module file the process (and its workers) loaded so far, in order."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _TRACE_LOADED.match(line)
            if match:
                found.append(Path(match.group("code") or match.group("ext")))
        return found


def serve(
    venv: Venv,
    target: str,
    port: int,
    env: Mapping[str, str],
    *,
    cwd: Path,
    log_path: Path,
) -> InstalledFunction:
    """Start the venv's functions-framework on the installed main.py (returns at once)."""
    cmd = [
        str(venv.script("functions-framework")),
        f"--target={target}",
        f"--source={venv.site_packages / 'main.py'}",
        # Terraform gives no function an event trigger (the subscriber is fed by a push
        # subscription), so each is deployed as an HTTP function; main.py's decorator is
        # what makes process_stripe_event a CloudEvent function, here as in production.
        "--signature-type=http",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    with log_path.open("ab") as sink:
        proc = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            cmd,
            cwd=cwd,
            env={**env, "PYTHONVERBOSE": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return InstalledFunction(target, port, log_path, proc)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_listening(functions: Sequence[InstalledFunction], timeout: float = 90.0) -> None:
    """Wait until every function accepts connections; fail with the log of one that died."""
    deadline = time.monotonic() + timeout
    pending = list(functions)
    while pending:
        for function in list(pending):
            if function.proc.poll() is not None:
                raise ArtifactError(
                    f"{function.target} exited with {function.proc.returncode}:\n"
                    f"{function.output()[-4000:]}"
                )
            if _listening(function.port):
                pending.remove(function)
        if pending and time.monotonic() > deadline:
            names = [f.target for f in pending]
            raise ArtifactError(f"not listening after {timeout:.0f} s: {names}")
        time.sleep(0.1)
