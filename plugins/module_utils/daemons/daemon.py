"""What the DCM daemons (``dcm-agent``, ``dcm-master``) share: command line, configuration file,
logging, systemd readiness and the ``--show`` of their etcd key. Standard library only."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from typing import Callable

from ..core.errors import DcmError


def read_config(path: str, what: str) -> dict:
    """The JSON object in ``path``; errors name the file and what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise DcmError(f"cannot read the {what} configuration {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise DcmError(f"the {what} configuration {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DcmError(f"{path}: the {what} configuration must be a JSON object, got {type(raw).__name__}")
    return raw


def positive_seconds(path: str, key: str, value: object) -> float:
    """A configuration value that must be a positive number of seconds; the error names the key."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = 0.0
    if number <= 0:
        raise DcmError(f"{path}: {key} must be a positive number of seconds, got {value!r}")
    return number


def command_line(argv: list | None, env_var: str, default_path: str) -> tuple:
    """``(configuration path, show)`` from ``[--show] [PATH]`` (PATH: the argument, ``$env_var``, the default)."""
    args = list(sys.argv[1:] if argv is None else argv)
    show = "--show" in args
    args = [a for a in args if a != "--show"]
    return (args[0] if args else os.environ.get(env_var, default_path)), show


def start_logging() -> None:
    """One line per record on stdout: journald adds the time and the unit."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)


def stop_on_signals(stop: Callable) -> None:
    """SIGTERM (systemctl stop) and SIGINT end the daemon's loop cleanly."""
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def notify_systemd(message: str) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (Type=notify units)."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return
    if target.startswith("@"):
        target = "\0" + target[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(target)
        sock.sendall(message.encode("utf-8"))


def show(value: str | None, absent: str) -> int:
    """``--show``: print ``value`` as etcd holds it (exit 0), or ``absent`` on stderr (exit 1)."""
    if value is None:
        sys.stderr.write(absent + "\n")
        return 1
    sys.stdout.write(value + "\n")
    return 0
