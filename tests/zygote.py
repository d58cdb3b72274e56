"""A tieout with its imports done, forking one child process per command the tests run.

Each `tieout` the tests start pays about 1.5 s of CPU to import pandas, pandera and pyarrow
before it does anything; the suite starts a few hundred. The zygote imports them once, then for
each request forks a child that sets its own working directory, environment and standard
streams and runs the real command line, exactly as ``python -m pipelines`` would: its own
process, its own exit code, its output captured from file descriptors 1 and 2. (Nothing runs
in the zygote but imports, so a child starts as a fresh process would, minus the import time.)

Protocol, over a Unix socket: the caller sends one JSON line (``args``, ``env``, ``cwd``,
``stdout``, ``stderr`` paths); the child answers its pid, then its exit code, one line each.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import signal
import socket
import sys
import traceback


def _exit_code(exit: SystemExit) -> int:
    """What the interpreter would exit with for this SystemExit."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)
    return 1


def _child(conn: socket.socket) -> None:
    request = json.loads(conn.makefile("r").readline())
    os.setsid()  # the caller stops the whole group on a timeout, as subprocess would the child
    conn.sendall(f"{os.getpid()}\n".encode())
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    from pipelines.cli.main import cli

    try:
        cli.main(args=request["args"], prog_name="tieout")
        code = 0
    except SystemExit as exit:
        code = _exit_code(exit)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        conn.sendall(f"{code}\n".encode())
        os._exit(code)


PREIMPORTED = (
    "pipelines.cli.main",
    "pipelines.reconciling.sync",
    "pipelines.reporting.publish",
    "pipelines.runs.pipeline",
    "pipelines.runs.reconcile",
)


def serve(path: str) -> None:
    # The imports every command pays for, done once here for every child forked below (by
    # name: a linter sees no use of them and would take plain imports out).
    for module in PREIMPORTED:
        importlib.import_module(module)
    from pipelines.kinds import registered

    registered()  # the built-in kinds, imported and registered

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _child(conn)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
