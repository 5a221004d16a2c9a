"""The local stack: emulators, topology, and our functions served by functions-framework.

Used by the integration tests (`LocalStack`) and by `make dev` (`python -m
infra.local.stack dev`). Functions run as real functions-framework apps on gunicorn
(`infra/local/serve.py`: the framework's own launcher settings plus a read deadline), each
in its own process group, with stdout/stderr (the JSON logs) captured to a file.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from functions.config import CommonSettings
from functions.services.probe import subscription_event
from infra.local.emulators import Emulators, start_emulators, stop_process_group
from infra.local.signing import sign
from infra.local.topology import desired_topology, provision

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
WEBHOOK_TARGET = "stripe_webhook"
SUBSCRIBER_TARGET = "process_stripe_event"
READ_API_TARGET = "entitlements_api"


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main_exports(name: str, source: Path = MAIN) -> bool:
    """Whether main.py defines (or imports) `name`, without importing it."""
    if not source.exists():
        return False
    tree = ast.parse(source.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.ImportFrom) and any(
            (a.asname or a.name) == name for a in node.names
        ):
            return True
    return False


@dataclass
class RunningFunction:
    target: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]
    # What started it, so infra/local/supervise.py can start it again the same way.
    env: Mapping[str, str] = field(default_factory=dict)
    signature_type: str = "http"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process_group(self.proc)


def start_function(
    target: str,
    port: int,
    env: Mapping[str, str],
    *,
    signature_type: str = "http",
    source: Path = MAIN,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> RunningFunction:
    log_path = log_path or Path(tempfile.mkstemp(prefix=f"{target}-", suffix=".log")[1])
    # functions-framework's app and gunicorn settings, with a per-request read deadline
    # (infra/local/serve.py says why and what stands in for it in production).
    cmd = [
        sys.executable,
        "-m",
        "infra.local.serve",
        "--source",
        str(source),
        "--target",
        target,
        "--signature-type",
        signature_type,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("ab") as sink:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = RunningFunction(target, port, log_path, proc, dict(env), signature_type)
    deadline = time.monotonic() + timeout
    while not port_answers(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited with {proc.returncode}:\n{running.logs()[-3000:]}")
        if time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"{target} did not listen on {port}; log at {log_path}")
        time.sleep(0.1)
    return running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalStack:
    """Emulators + provisioned topology + webhook (+ subscriber when main.py has it)."""

    env: dict[str, str] = field(default_factory=dict)
    project: str = field(default_factory=lambda: f"local-{uuid.uuid4().hex[:8]}")
    webhook_port: int | None = None
    subscriber_port: int | None = None
    subscriber: bool = True
    observer_subscriptions: bool = True
    # The current-entitlements read API (needs INTERNAL_AUTH_SECRET in env); 0: a free port.
    read_api_port: int | None = None
    # The push subscription's dead-letter policy (the subscriber's MAX_DELIVERY_ATTEMPTS
    # must say the same: set both).
    max_delivery_attempts: int = 5
    emulators: Emulators | None = None
    functions: list[RunningFunction] = field(default_factory=list)
    _own_emulators: bool = False

    @property
    def webhook(self) -> RunningFunction:
        return next(f for f in self.functions if f.target == WEBHOOK_TARGET)

    @property
    def webhook_url(self) -> str:
        return self.webhook.url

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.emulators is None:
            self.emulators = start_emulators()
            self._own_emulators = True
        self.webhook_port = self.webhook_port or free_port()
        self.subscriber_port = self.subscriber_port or free_port()
        self.env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            **self.emulators.env(),
            **self.env,
        }
        self.project = self.env["GOOGLE_CLOUD_PROJECT"]
        push = f"http://127.0.0.1:{self.subscriber_port}/"
        saved = {k: os.environ.get(k) for k in self.emulators.env()}
        os.environ.update(self.emulators.env())
        try:
            settings = CommonSettings.model_validate({k.lower(): v for k, v in self.env.items()})
            provision(
                self.project,
                desired_topology(
                    settings,
                    subscriber_push_endpoint=push,
                    max_delivery_attempts=self.max_delivery_attempts,
                    observer_subscriptions=self.observer_subscriptions,
                ),
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.functions.append(start_function(WEBHOOK_TARGET, self.webhook_port, self.env))
        if self.subscriber:
            if not main_exports(SUBSCRIBER_TARGET):
                raise RuntimeError(
                    f"main.py does not export {SUBSCRIBER_TARGET}; use LocalStack(subscriber=False)"
                )
            self.functions.append(
                start_function(
                    SUBSCRIBER_TARGET,
                    self.subscriber_port,
                    self.env,
                    signature_type="cloudevent",
                )
            )
        if self.read_api_port is not None:
            self.read_api_port = self.read_api_port or free_port()
            self.functions.append(start_function(READ_API_TARGET, self.read_api_port, self.env))

    def stop(self) -> None:
        for function in self.functions:
            function.stop()
        self.functions.clear()
        if self.emulators is not None and self._own_emulators:
            self.emulators.stop()
            self.emulators = None


def curl_example(url: str, secret: str) -> str:
    """A signed `customer.subscription.created` for `cus_dev` on Team, as Stripe sends it."""
    now = int(time.time())
    event = subscription_event(
        f"evt_dev{uuid.uuid4().hex[:12]}",
        now,
        "dataface_team_monthly",
        customer="cus_dev",
        subscription_id="sub_dev",
        subscription_created=now,
        first=True,
        livemode=False,
        metadata={"account_id": "acct_dev"},
    )
    body = json.dumps(event, separators=(",", ":"))
    header = sign(body.encode(), [secret], now)
    return (
        f"curl -sS -X POST {url} -H 'Content-Type: application/json' "
        f"-H {shlex.quote('Stripe-Signature: ' + header)} --data-raw {shlex.quote(body)}"
    )


def read_api_example(url: str, auth_secret: str) -> str:
    from functions.entrypoints.auth import READ_AUDIENCE, issue_token  # noqa: PLC0415

    token = issue_token("dev", auth_secret, audience=READ_AUDIENCE, ttl_seconds=300)
    return f"curl -sS {url.rstrip('/')}/v1/entitlements/acct_dev -H 'Authorization: Bearer {token}'"


def dev() -> int:
    env: dict[str, str] = {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "dataface-billing-dev"
    env["GOOGLE_CLOUD_PROJECT"] = project
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET")
    generated = not secret
    if not secret:
        secret = "whsec_dev" + secrets.token_hex(16)
        env["STRIPE_WEBHOOK_SECRET"] = secret
    auth_secret = os.environ.get(
        "INTERNAL_AUTH_SECRET"
    ) or "dev-internal-auth-" + secrets.token_hex(16)
    env["INTERNAL_AUTH_SECRET"] = auth_secret
    webhook_port = int(os.environ.get("WEBHOOK_PORT", "8080"))
    subscriber_port = int(os.environ.get("SUBSCRIBER_PORT", "8081"))
    read_api_port = int(os.environ.get("READ_API_PORT", "8082"))
    with_subscriber = main_exports(SUBSCRIBER_TARGET)
    stop = threading.Event()
    # Both set the flag. SIGINT explicitly too: a process started with SIGINT ignored
    # (inherited from its parent, as under some test runners and nohup-like launchers)
    # gets no KeyboardInterrupt from Python, and Ctrl-C would then do nothing.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stack = LocalStack(
        env=env,
        project=project,
        webhook_port=webhook_port,
        subscriber_port=subscriber_port,
        subscriber=with_subscriber,
        read_api_port=read_api_port if main_exports(READ_API_TARGET) else None,
    )
    print("starting emulators and functions...", flush=True)
    with stack:
        assert stack.emulators is not None
        print(f"project:          {stack.project}")
        for name, value in stack.emulators.env().items():
            print(f"{name}={value}")
        print(f"webhook URL:      {stack.webhook_url}")
        if with_subscriber:
            print(f"subscriber URL:   http://127.0.0.1:{stack.subscriber_port}/")
        else:
            print(f"subscriber:       not started (main.py has no {SUBSCRIBER_TARGET} yet)")
        for function in stack.functions:
            print(f"logs {function.target}: {function.log_path} (pid {function.proc.pid})")
        if generated:
            print(f"generated dev secret: STRIPE_WEBHOOK_SECRET={secret}")
        print("example signed request (valid for 5 minutes; Team for acct_dev):")
        print(curl_example(stack.webhook_url, secret.split(",")[0].strip()))
        if stack.read_api_port:
            read_url = f"http://127.0.0.1:{stack.read_api_port}/"
            print(f"read API URL:     {read_url}   (INTERNAL_AUTH_SECRET={auth_secret})")
            print("its entitlements, after the request above (token valid for 5 minutes):")
            print(read_api_example(read_url, auth_secret))
            print("a downstream consumer following the stream (README, Downstream):")
            hosts = " ".join(f"{k}={v}" for k, v in stack.emulators.env().items())
            print(
                f"  INTERNAL_AUTH_SECRET={auth_secret} {hosts} "
                f".venv/bin/python -m functions.consumer.example --project {stack.project} "
                f"--read-api {read_url}"
            )
        print("running; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            _supervise(stack, stop, with_subscriber, secret.split(",")[0].strip())
        print("stopping...", flush=True)
    return 0


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _supervise(
    stack: LocalStack, stop: threading.Event, with_subscriber: bool, secret: str
) -> None:
    """Restart dead function processes, watch the push loop and run the synthetic probe
    (infra/local/probe_loop.py) until asked to stop."""
    from infra.local.probe_loop import LocalProbe  # noqa: PLC0415 - needs the emulator env
    from infra.local.supervise import Supervisor  # noqa: PLC0415 - it imports this module
    from infra.local.watchdog import PushWatchdog  # noqa: PLC0415 - needs the emulator env

    supervisor = Supervisor(stack.functions, _say)
    watchdog = None
    level = (stack.env.get("LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO").upper()
    if with_subscriber and level not in ("DEBUG", "INFO"):
        # It counts deliveries from the subscriber's INFO lines; above INFO it would
        # report a stall for every quiet healthy minute.
        _say(f"watchdog: off (LOG_LEVEL={level} hides the subscriber's delivery lines)")
    elif with_subscriber:
        assert stack.emulators is not None
        os.environ.update(stack.emulators.env())
        watchdog = PushWatchdog(
            stack.project,
            stack.env.get("STRIPE_EVENTS_TOPIC", "stripe-events"),
            lambda: next(f.log_path for f in stack.functions if f.target == SUBSCRIBER_TARGET),
            _say,
            stall_seconds=float(os.environ.get("WATCHDOG_STALL_SECONDS", "30")),
        )
    probe = None
    if with_subscriber:
        from functions.log import configure_logging  # noqa: PLC0415

        # The probe runs in this process: its JSON log lines would land in the middle of
        # the human output; LocalProbe prints what matters (completions, failures).
        configure_logging("CRITICAL")
        interval = float(os.environ.get("PROBE_INTERVAL_SECONDS", "60"))
        timeout = float(os.environ.get("PROBE_TIMEOUT_SECONDS", "30"))
        probe = LocalProbe(
            stack.project, stack.webhook_url, secret, _say, interval=interval, timeout=timeout
        )
    try:
        while not stop.is_set():
            supervisor.check()
            if watchdog is not None:
                watchdog.check()
            if probe is not None:
                probe.check()
            stop.wait(0.5)
    finally:
        if probe is not None:
            probe.close()
        if watchdog is not None:
            watchdog.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.stack")
    parser.add_argument("command", choices=["dev"])
    parser.parse_args(argv)
    return dev()


if __name__ == "__main__":
    sys.exit(main())
