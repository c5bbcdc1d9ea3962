"""The verifier's checkpoint checks: signatures of held and stored checkpoints, then sizes and roots.

Signatures are checked before the entries are (:func:`check_held`, :func:`read_stored`; the latter while other
processes already scan the log); sizes and Merkle roots only once the scan has produced the tree
(:func:`check_checkpoints`). Held checkpoints (kept by the verifier or fetched from a witness) come first: at equal
size a disagreement with one of them is a fork.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, NamedTuple

from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.merkle import MerkleTree
from medfw.audit.report import BAD_CHECKPOINT_SIGNATURE, EDITED, FORKED, TRUNCATED, Run, VerifyReport
from medfw.errors import AuditError, SignatureError

if TYPE_CHECKING:
    from medfw.audit.ckeys import CheckpointPublicKey

__all__ = ["Stored", "check_checkpoints", "check_held", "read_stored"]


def check_held(run: Run, held: list[SignedCheckpoint], trusted: CheckpointPublicKey) -> VerifyReport | None:
    """A report when a held checkpoint is not signed by the pinned key.

    Raises:
        AuditError: a held checkpoint belongs to another log.
    """
    for i, signed in enumerate(held):
        cp = signed.checkpoint
        if cp.log_id != run.log_id:
            raise AuditError(
                f"checkpoint belongs to log {cp.log_id!r}, not to this log ({run.log_id!r})",
                path=run.store.label,
                field="log_id",
            )
        try:
            signed.verify(trusted)
        except (SignatureError, AuditError) as e:
            which = f"checkpoint {i + 1} (size {cp.size})" if len(held) > 1 else f"the checkpoint (size {cp.size})"
            return run.report(
                ok=False,
                verified=0,
                classification=BAD_CHECKPOINT_SIGNATURE,
                message=f"{which} is not signed by this log's pinned checkpoint key: {e.message}",
                checkpoint_size=cp.size,
                bad_checkpoint=cp.size,
            )
    return None


class Stored(NamedTuple):
    """One of the log's own checkpoints after its signature check: its root, or why it failed."""

    size: int
    label: str
    root: bytes | None = None
    error: str | None = None


def read_stored(run: Run, trusted: CheckpointPublicKey) -> list[Stored]:
    """Parse the log's own checkpoints and check their signatures (sizes and roots are checked later).

    Raises:
        sqlite3.DatabaseError: damaged storage (the verifier reads them again after the scan, which reports it).
    """
    out: list[Stored] = []
    for i, (size, doc) in enumerate(run.store.checkpoints()):
        label = f"stored checkpoint #{i + 1} (size {size})"
        try:
            scp = SignedCheckpoint.from_bytes(doc, path=run.store.label)
            scp.verify(trusted)
        except (AuditError, SignatureError) as e:
            out.append(Stored(size, label, error=e.message))
            continue
        out.append(Stored(scp.checkpoint.size, label, root=scp.checkpoint.root))
    return out


def _stored_roots(run: Run, n: int, stored: list[Stored], pinned: bool) -> tuple[list[Stored], VerifyReport | None]:
    """The stored checkpoints that verified; a report when one is forged or reaches beyond the log."""
    out: list[Stored] = []
    for s in stored:
        if s.error is not None:
            if not pinned:
                run.warnings.append(f"{s.label} does not verify: {s.error}")
                continue
            return out, run.report(
                ok=False,
                verified=n,
                classification=BAD_CHECKPOINT_SIGNATURE,
                bad_checkpoint=s.size,
                message=f"{s.label} is not signed by the pinned checkpoint key (re-signed or forged): {s.error}",
            )
        if s.size > n:
            return out, run.report(
                ok=False,
                verified=n,
                first_bad_seq=n,
                classification=TRUNCATED,
                bad_checkpoint=s.size,
                message=f"the log's own checkpoint covers {s.size} entries but only {n} remain",
            )
        out.append(s)
    return out, None


def check_checkpoints(
    run: Run, tree: MerkleTree, held: list[SignedCheckpoint], stored: list[Stored], *, pinned: bool
) -> VerifyReport | None:
    """The chain is intact: check the Merkle root against every checkpoint held or stored; None when all agree."""
    n = tree.size
    run.extra["stored_checkpoints"] = len(stored)
    for signed in sorted(held, key=lambda c: -c.checkpoint.size):
        cp = signed.checkpoint
        if cp.size > n:
            return run.report(
                ok=False,
                verified=n,
                first_bad_seq=n,
                classification=TRUNCATED,
                bad_checkpoint=cp.size,
                message=f"the checkpoint covers {cp.size} entries but the log has only {n}: the tail was removed",
            )
    good, failed = _stored_roots(run, n, stored, pinned)
    if failed is not None:
        return failed
    wanted = [
        (c.checkpoint.size, c.checkpoint.root, "given", f"the held checkpoint of size {c.checkpoint.size}")
        for c in held
    ]
    wanted += [(s.size, s.root or b"", "stored", s.label) for s in good]
    run.extra["root"] = tree.root().hex()
    for size, want, origin, label in sorted(wanted, key=lambda w: w[0]):
        if not hmac.compare_digest(tree.root(size), want):
            return run.report(
                ok=False,
                verified=n,
                first_bad_seq=size - 1,
                classification=FORKED if origin == "given" else EDITED,
                bad_checkpoint=size,
                message=(
                    f"the log's first {size} entries differ from what {label} committed to "
                    "(rolled back and rewritten at or before this seq)"
                ),
            )
    return None
