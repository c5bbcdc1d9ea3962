"""eFuse evidence: the security policy verdict on a unit's eFuses and whether they trust the release's keys.

Pure: takes an ``espefuse summary --format json`` object (a real unit's, or the simulated unit's from
:mod:`medfw.evidence.scenario`), the policy and the release's key digests; returns a JSON-ready result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medfw.device.chips import EfuseFamily
from medfw.device.policy import EfuseSummary, Policy, check_summary

__all__ = ["burned_digests", "check_unit"]

_DIGEST_PURPOSES = {9: 0, 10: 1, 11: 2}  # KEY_PURPOSE_n value -> secure boot digest slot


def burned_digests(summary: EfuseSummary) -> list[dict[str, Any]]:
    """The secure boot key digests burned in ``summary``: slot, digest (hex) and whether revoked.

    For the classic ESP32 the single digest is BLOCK2 (compared in both byte orders by :func:`check_unit`,
    since espefuse may show ESP32 key blocks reversed).
    """
    out: list[dict[str, Any]] = []
    if summary.family() is EfuseFamily.CLASSIC:
        raw = summary.raw("BLOCK2")
        if raw:
            out.append({"slot": 0, "block": "BLOCK2", "digest": raw.to_bytes(32, "big").hex(), "revoked": False})
        return out
    for n in range(6):
        if not (summary.has(f"KEY_PURPOSE_{n}") and summary.has(f"BLOCK_KEY{n}")):
            continue
        slot = _DIGEST_PURPOSES.get(summary.raw(f"KEY_PURPOSE_{n}"))
        if slot is None:
            continue
        revoke = f"SECURE_BOOT_KEY_REVOKE{slot}"
        out.append(
            {
                "slot": slot,
                "block": f"BLOCK_KEY{n}",
                "digest": summary.raw(f"BLOCK_KEY{n}").to_bytes(32, "big").hex(),
                "revoked": summary.has(revoke) and bool(summary.raw(revoke)),
            }
        )
    return out


def check_unit(
    summary_json: object,
    *,
    policy: Policy,
    chip: str,
    key_digests: Sequence[bytes],
    source: str,
) -> dict[str, Any]:
    """Check one unit's eFuses: the policy rules, and that every burned, unrevoked digest is a release key.

    ``ok`` is true when the policy passes, at least one release key digest is burned and not revoked, and no
    other (foreign) digest is left unrevoked.

    Raises:
        InputError: the summary is not an espefuse summary of ``chip``.
    """
    summary = EfuseSummary.from_json(summary_json, path=source)
    report = check_summary(summary, policy, chip=chip)
    wanted = {d.hex() for d in key_digests}
    burned = burned_digests(summary)
    classic = summary.family() is EfuseFamily.CLASSIC
    for b in burned:
        digest = bytes.fromhex(b["digest"])
        candidates = {digest.hex(), digest[::-1].hex()} if classic else {digest.hex()}
        b["release_key"] = bool(candidates & wanted)
    trusted = [b for b in burned if b["release_key"] and not b["revoked"]]
    foreign = [b for b in burned if not b["release_key"] and not b["revoked"]]
    return {
        "source": source,
        "policy": report.to_dict(),
        "digests": burned,
        "release_keys_trusted": len(trusted),
        "foreign_keys_trusted": len(foreign),
        "ok": report.passed and bool(trusted) and not foreign,
    }
