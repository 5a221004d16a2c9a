"""Start the Pub/Sub and Firestore emulators on free ports, wait for them, stop them.

Used by the test harness, `make dev`, `make demo` and `make bench`. When
PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST are already set, those emulators are
reused and left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

INSTALL_HINT = (
    "The Pub/Sub and Firestore emulators need the gcloud CLI with its emulator components "
    "and Java 17+. Install them with: apt-get install google-cloud-cli "
    "google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator "
    "openjdk-17-jre-headless (or: gcloud components install beta pubsub-emulator "
    "cloud-firestore-emulator)."
)
_READY_TIMEOUT = 60.0


class EmulatorUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_up(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _check_installed() -> None:
    missing = [tool for tool in ("gcloud", "java") if shutil.which(tool) is None]
    if missing:
        raise EmulatorUnavailable(f"missing {', '.join(missing)}. {INSTALL_HINT}")


@dataclass
class Emulators:
    pubsub_host: str
    firestore_host: str
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_dir: Path | None = None

    def env(self) -> dict[str, str]:
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
        }

    def stop(self) -> None:
        for proc in self._procs:
            # gcloud forks a java child; the whole process group has to go.
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()

    def __enter__(self) -> Emulators:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_emulators(*, reuse_env: bool = True) -> Emulators:
    if (
        reuse_env
        and os.environ.get("PUBSUB_EMULATOR_HOST")
        and os.environ.get("FIRESTORE_EMULATOR_HOST")
    ):
        emulators = Emulators(
            os.environ["PUBSUB_EMULATOR_HOST"], os.environ["FIRESTORE_EMULATOR_HOST"]
        )
        for host in (emulators.pubsub_host, emulators.firestore_host):
            if not is_up(host):
                raise EmulatorUnavailable(f"no emulator answers at {host} (from the environment)")
        return emulators

    _check_installed()
    log_dir = Path(tempfile.mkdtemp(prefix="billing-emulators-"))
    pubsub = f"127.0.0.1:{free_port()}"
    firestore = f"127.0.0.1:{free_port()}"
    emulators = Emulators(pubsub, firestore, log_dir=log_dir)
    gcloud = shutil.which("gcloud") or "gcloud"
    emulators._procs.append(
        _spawn(
            [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={pubsub}", "--quiet"],
            log_dir / "pubsub.log",
        )
    )
    emulators._procs.append(
        _spawn(
            [gcloud, "emulators", "firestore", "start", f"--host-port={firestore}", "--quiet"],
            log_dir / "firestore.log",
        )
    )
    deadline = time.monotonic() + _READY_TIMEOUT
    pending = {"pubsub": pubsub, "firestore": firestore}
    while pending:
        for name, host in list(pending.items()):
            if is_up(host):
                del pending[name]
        for proc, name in zip(emulators._procs, ("pubsub", "firestore"), strict=True):
            if proc.poll() is not None and name in pending:
                emulators.stop()
                output = (log_dir / f"{name}.log").read_text(errors="replace")[-800:]
                raise EmulatorUnavailable(
                    f"the {name} emulator exited ({proc.returncode}): {output}\n{INSTALL_HINT}"
                )
        if pending and time.monotonic() > deadline:
            emulators.stop()
            raise EmulatorUnavailable(f"emulators not ready after {_READY_TIMEOUT:.0f}s: {pending}")
        if pending:
            time.sleep(0.2)
    return emulators
