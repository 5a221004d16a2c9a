"""Start (or reuse) the Pub/Sub and Firestore emulators for tests and `make dev`.

Each emulator runs in its own process group: `gcloud` is a Python wrapper that spawns a
java child, and killing only the wrapper leaves java holding the port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

INSTALL_HINT = (
    "the Pub/Sub and Firestore emulators need the gcloud CLI, its emulator components and "
    "Java 17+. Install them with `apt-get install google-cloud-cli "
    "google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator "
    "openjdk-17-jre-headless` (or `gcloud components install pubsub-emulator "
    "cloud-firestore-emulator beta`), or point PUBSUB_EMULATOR_HOST and "
    "FIRESTORE_EMULATOR_HOST at running emulators."
)
STARTUP_TIMEOUT_SECONDS = 90.0


class EmulatorsUnavailable(RuntimeError):
    """gcloud, Java or an emulator component is missing; the message says what to install."""


EmulatorUnavailable = EmulatorsUnavailable  # earlier name, kept for callers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_ready(host: str) -> bool:
    """Both emulators answer `GET /` with "Ok" once they accept requests."""
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1) as resp:
            return bool(resp.read().strip().startswith(b"Ok"))
    except OSError:
        return False


def _check_prerequisites() -> None:
    missing = [tool for tool in ("gcloud", "java") if shutil.which(tool) is None]
    if missing:
        raise EmulatorsUnavailable(f"{' and '.join(missing)} not found: {INSTALL_HINT}")


@dataclass
class _Process:
    name: str
    host: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_process_group(self.proc, grace_seconds=15)


def stop_process_group(proc: subprocess.Popen[bytes], grace_seconds: float = 10) -> None:
    """SIGTERM the whole group (gcloud and functions-framework fork children), then KILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_seconds)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _start(name: str, args: list[str], host: str, log_dir: Path) -> _Process:
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [shutil.which("gcloud") or "gcloud", *args, f"--host-port={host}", "--quiet"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return _Process(name, host, proc, log)


def _wait_ready(process: _Process, deadline: float) -> None:
    while not is_ready(process.host):
        if process.proc.poll() is not None:
            output = process.log.read_text(errors="replace")[-2000:]
            if "component" in output.lower() or "not installed" in output.lower():
                raise EmulatorsUnavailable(f"{process.name} emulator: {INSTALL_HINT}\n{output}")
            raise RuntimeError(
                f"{process.name} emulator exited with {process.proc.returncode}:\n{output}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} emulator not ready; log at {process.log}")
        time.sleep(0.2)


@dataclass
class Emulators:
    pubsub_host: str
    firestore_host: str
    _processes: list[_Process] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
        }

    @property
    def owned(self) -> bool:
        """False when reusing emulators someone else started (then stop() leaves them)."""
        return bool(self._processes)

    def stop(self) -> None:
        for process in self._processes:
            process.stop()
        self._processes.clear()

    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to an emulator's whole group (gcloud wrapper and java): the chaos
        suite stalls Firestore with SIGSTOP and SIGCONT. Only emulators we started."""
        process = next((p for p in self._processes if p.name == name), None)
        if process is None:
            raise RuntimeError(f"the {name} emulator was not started here; cannot signal it")
        os.killpg(process.proc.pid, sig)

    @contextmanager
    def stalled(self, name: str) -> Iterator[None]:
        """The emulator frozen (connections stay open, nothing answers) for the block."""
        self.signal(name, signal.SIGSTOP)
        try:
            yield
        finally:
            self.signal(name, signal.SIGCONT)

    def __enter__(self) -> Emulators:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulators(*, log_dir: Path | None = None, reuse_env: bool = True) -> Emulators:
    """Start both emulators on free ports and wait until they answer.

    With reuse_env, hosts already in PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST are
    used as they are (and not stopped later).
    """
    existing_pubsub = os.environ.get("PUBSUB_EMULATOR_HOST") if reuse_env else None
    existing_firestore = os.environ.get("FIRESTORE_EMULATOR_HOST") if reuse_env else None
    to_start: list[tuple[str, list[str]]] = []
    if not existing_pubsub:
        to_start.append(("pubsub", ["beta", "emulators", "pubsub", "start"]))
    if not existing_firestore:
        to_start.append(("firestore", ["emulators", "firestore", "start"]))
    for host in (existing_pubsub, existing_firestore):
        if host and not is_ready(host):
            raise EmulatorsUnavailable(f"no emulator answers at {host} (from the environment)")
    if to_start:
        _check_prerequisites()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="emulators-"))
    started: list[_Process] = []
    try:
        for name, args in to_start:
            started.append(_start(name, args, f"127.0.0.1:{free_port()}", log_dir))
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        for process in started:
            _wait_ready(process, deadline)
    except BaseException:
        for process in started:
            process.stop()
        raise
    hosts = {p.name: p.host for p in started}
    return Emulators(
        pubsub_host=existing_pubsub or hosts["pubsub"],
        firestore_host=existing_firestore or hosts["firestore"],
        _processes=started,
    )


@contextmanager
def running_emulators(**kwargs: object) -> Iterator[Emulators]:
    emulators = start_emulators(**kwargs)  # type: ignore[arg-type]
    try:
        yield emulators
    finally:
        emulators.stop()
