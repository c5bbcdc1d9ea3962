"""Which server process appends the audit log: the one holding an exclusive lock on ``LOG.drainer.lock``.

The lock is an ``fcntl`` lock held for the life of the process, so the kernel releases it when the process ends
(even on ``kill -9``) and another worker can take over at its next maintenance pass.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from medfw.audit.sink import AuditSink

__all__ = ["AuditLease"]


class AuditLease:
    """The claim on appending the audit log at ``log_path``.

    Args:
        log_path: the audit log.
        open_sink: opens the log (called once the lock is held).
    """

    def __init__(self, log_path: str, open_sink: Callable[[], AuditSink]) -> None:
        self.path = Path(f"{log_path}.drainer.lock")
        self._open = open_sink
        self._fd: int | None = None

    def try_claim(self) -> AuditSink | None:
        """Take the lock if it is free and return the opened log; ``None`` while another process holds it."""
        if self._fd is not None:
            return None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        self._fd = fd
        return self._open()
