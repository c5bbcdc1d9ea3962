"""Crash safety: kill the writer process mid-append, again and again; the log always verifies."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from medfw.audit import AuditEvent, init_log, open_log, verify_log

KILLS = 50


def _writer(path: Path, fd: int) -> None:
    """Child process: append forever, reporting each committed seq on the pipe."""
    log = open_log(path)
    i = 0
    while True:
        entry = log.append(AuditEvent(type="ota.download", outcome="info", data={"chunk": i, "pad": "x" * 200}))
        os.write(fd, b"%d\n" % entry.seq)
        i += 1


def test_kill_writer_mid_append_50_times(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    res = init_log(path, epoch_length=7, checkpoint_interval=13)
    rng = random.Random(50)
    last_committed = 0
    for _ in range(KILLS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            try:
                _writer(path, w)
            finally:
                os._exit(0)
        os.close(w)
        want = rng.randint(1, 4)
        seen: list[int] = []
        buf = b""
        with os.fdopen(r, "rb", buffering=0) as pipe:
            while len(seen) < want:
                chunk = pipe.read(64)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                seen.extend(int(x) for x in lines if x)
            time.sleep(rng.random() / 1000)
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert seen, "writer produced nothing"
        last_committed = max(seen)
        report = verify_log(path, res.verification_key)
        assert report.ok, report
        # Every entry reported as committed survived; at most the in-flight ones beyond it were added.
        assert report.verified >= last_committed + 1
    with open_log(path) as log:
        cp = log.checkpoint()
    final = verify_log(path, res.verification_key, checkpoint=cp)
    assert final.ok, final
    assert final.verified > last_committed
