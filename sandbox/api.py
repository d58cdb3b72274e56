"""What a test or a kind's author uses of the sandbox: its public face. A record kind the
sandbox does not know is one :class:`SandboxKind` (its :class:`Write` routes), added to one
sandbox by ``SandboxConfig(kinds=(...))``; :func:`running_sandbox` starts it in a thread,
:func:`read_seed` gives its reference data."""

from __future__ import annotations

from sandbox.faults import SandboxConfig
from sandbox.kinds import SandboxKind, Write, Written, store_body, store_each
from sandbox.server import RunningSandbox, read_seed, running_sandbox

__all__ = [
    "RunningSandbox",
    "SandboxConfig",
    "SandboxKind",
    "Write",
    "Written",
    "read_seed",
    "running_sandbox",
    "store_body",
    "store_each",
]
