"""``parley run actions``: start rasa-sdk's action server, as ``rasa run actions`` does.

Parley does not run custom actions itself: they run on rasa-sdk's server, in a Python that
has ``rasa_sdk`` (its pins — sanic, pydantic … — need not match Parley's environment, so
``--python`` may name another one). This command starts ``python -m rasa_sdk`` there with
Rasa's flags and waits for it.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from typing import Any

DEFAULT_ACTIONS_PORT = 5055
STOP_GRACE_SECONDS = 5.0


def register(run_commands: Any) -> None:
    parser = run_commands.add_parser(
        "actions", help="Start rasa-sdk's action server (as `rasa run actions`).",
        description="Start rasa-sdk's action server with the actions of a module or package "
                    "(default: actions, the folder or actions.py where the command runs). "
                    "Needs a Python with rasa_sdk (pip install rasa-sdk): this one, or "
                    "--python.",
    )
    parser.add_argument("--actions", default="actions",
                        help="Module or package with the actions (default: actions).")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_ACTIONS_PORT,
                        help=f"Port to listen on (default: {DEFAULT_ACTIONS_PORT}).")
    parser.add_argument("--cors", nargs="*", default=None,
                        help="Origins allowed to call the server from a browser.")
    parser.add_argument("--ssl-certificate", default=None, help="SSL certificate file.")
    parser.add_argument("--ssl-keyfile", default=None, help="SSL private key file.")
    parser.add_argument("--ssl-password", default=None, help="Password of the SSL key.")
    parser.add_argument("--auto-reload", action="store_true",
                        help="Reload the actions when their files change.")
    parser.add_argument("--python", default=sys.executable,
                        help="The Python that has rasa_sdk (default: this one).")
    parser.set_defaults(handler=run_actions)


def sdk_command(args: argparse.Namespace) -> list[str]:
    """The command line that starts rasa-sdk with ``args``' flags."""
    command = [args.python, "-m", "rasa_sdk", "--actions", args.actions,
               "--port", str(args.port)]
    if args.cors is not None:
        command += ["--cors", *args.cors]
    for flag in ("ssl_certificate", "ssl_keyfile", "ssl_password"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if args.auto_reload:
        command.append("--auto-reload")
    return command


def run_actions(args: argparse.Namespace) -> int:
    from parley.errors import ConfigError

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, found {args.port}.")
    try:
        probe = subprocess.run([args.python, "-c", "import rasa_sdk"], capture_output=True,
                               timeout=120)
    except OSError as error:
        raise ConfigError(f"--python {args.python} cannot be run ({error.strerror}).") from None
    if probe.returncode != 0:
        raise ConfigError(
            f"`parley run actions` starts rasa-sdk's action server, and {args.python} "
            "cannot import rasa_sdk. Install it there (pip install rasa-sdk), or name a "
            "Python that has it with --python.")
    # In a process group of its own: Sanic, given a second stop signal, SIGKILLs its whole
    # group, which would otherwise be this process and the shell's job. Ctrl-C and a SIGTERM
    # to this process (docker stop, systemd, kill) are passed on, so the server does not
    # outlive it.
    server = subprocess.Popen(sdk_command(args), start_new_session=True)
    stop_asked: list[float] = []

    def stop(*_: Any) -> None:
        stop_asked.append(time.monotonic())
        server.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return _wait(server, stop_asked)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.kill()
            server.wait()


def _wait(server: subprocess.Popen[bytes], stop_asked: list[float]) -> int:
    """The server's exit code once it ends (0 when asked to stop). rasa-sdk's Sanic now
    and then lets a SIGTERM pass while it spins; it is sent again every
    STOP_GRACE_SECONDS, and the server killed after three."""
    while True:
        try:
            code = server.wait(timeout=0.5)
            # Stopped on purpose: a clean end, however Sanic took the signal (it may trip
            # over it while starting its worker and exit 1).
            return 0 if stop_asked or code < 0 else code
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:
            stop_asked.append(time.monotonic())
            server.terminate()
        if stop_asked:
            waited = time.monotonic() - stop_asked[0]
            if waited > 3 * STOP_GRACE_SECONDS:
                server.kill()
            elif waited > STOP_GRACE_SECONDS * len(stop_asked):
                stop_asked.append(time.monotonic())
                server.terminate()
