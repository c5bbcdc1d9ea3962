"""Secure Boot v2 key rotation: the plan, the transition image, the TUF root rotation and the device-side revocation.

The procedure follows ESP-IDF's *conservative* revocation. A device trusts up to three eFuse key digests (slots 0..2);
spare keys are burned at the factory and kept offline (e.g. in an HSM). Rotating from old key(s) to a new one:

1. **Plan** (:func:`plan_rotation`, pure): the new key's digest must already be burned in a usable slot (otherwise
   devices would refuse images signed only with it); each old key must be in a usable slot; the plan names the
   eFuse revoke bit of each old slot (``SECURE_BOOT_KEY_REVOKE<n>``).
2. **Transition image** (:func:`sign_transition`): the image is signed with the new key *and* the old key(s) —
   at most three Secure Boot v2 blocks, new key first — so it boots whether or not a device has revoked the old key.
3. **TUF** (:func:`rotate_tuf_root`): the update repository's root N+1 names the new root keys and is signed by
   both the old and the new root keys, so clients walk N → N+1 (TUF spec §5.3).
4. **Revoke** (:func:`revoke_on_device`), per device, only after the new image is confirmed there: the device
   re-verifies its running app and bootloader without the old key before burning the revoke bit
   (:meth:`medfw.device.device.Device.revoke_key`). Afterwards it refuses images signed only by the old key.

Every step records an audit event (``key.rotate`` / ``key.revoke``) with key fingerprints and digests only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from medfw.audit.sink import AuditEvent, AuditSink
from medfw.crypto.keys import PublicKey, public_key_fingerprint
from medfw.crypto.signer import Signer
from medfw.errors import ConfigError, KeyMaterialError, PolicyViolationError, UsageError
from medfw.image import sbv2

if TYPE_CHECKING:
    from medfw.update.repository import TufRepository

__all__ = [
    "PLAN_FORMAT",
    "KeySlotView",
    "PlannedKey",
    "Revocation",
    "RotationPlan",
    "plan_rotation",
    "revoke_on_device",
    "rotate_tuf_root",
    "sign_transition",
]

PLAN_FORMAT = "medfw-key-rotation/1"


class KeySlotView(Protocol):
    """What the plan needs to know about one eFuse digest slot (matches :class:`medfw.device.efuse.KeySlot`)."""

    @property
    def index(self) -> int: ...

    @property
    def digest(self) -> bytes | None: ...

    @property
    def revoked(self) -> bool: ...


class RevokingDevice(Protocol):
    """A device that can revoke a key slot the conservative way (:class:`medfw.device.device.Device`)."""

    def revoke_key(self, slot: int) -> None: ...


@dataclass(frozen=True)
class PlannedKey:
    """A key in the plan: where it comes from, its fingerprint, its Secure Boot v2 digest and eFuse slot."""

    key_id: str
    fingerprint: str
    sbv2_digest: bytes
    slot: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "sbv2_digest": self.sbv2_digest.hex(),
            "efuse_slot": self.slot,
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> PlannedKey:
        """Parse one key entry of a plan file.

        Raises:
            ConfigError: a field is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("key entry must be an object", field=where)
        try:
            key_id, fp, digest, slot = data["key_id"], data["fingerprint"], data["sbv2_digest"], data["efuse_slot"]
            if not (isinstance(key_id, str) and isinstance(fp, str) and isinstance(digest, str)):
                raise TypeError
            if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot <= 2:
                raise TypeError
            raw = bytes.fromhex(digest)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                "key entry needs key_id, fingerprint, sbv2_digest (hex) and efuse_slot (0..2)", field=where
            ) from None
        if len(raw) != 32:
            raise ConfigError("sbv2_digest must be 32 bytes", field=f"{where}.sbv2_digest")
        return cls(key_id, fp, raw, slot)


@dataclass(frozen=True)
class Revocation:
    """One device-side step: burn ``SECURE_BOOT_KEY_REVOKE<slot>`` once the new image is confirmed."""

    slot: int
    key_digest: bytes

    @property
    def efuse_field(self) -> str:
        """The eFuse that is burned."""
        return f"SECURE_BOOT_KEY_REVOKE{self.slot}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "efuse_slot": self.slot,
            "efuse_field": self.efuse_field,
            "key_digest": self.key_digest.hex(),
            "precondition": "the running app is signed by the new key and confirmed (VALID); the running app and "
            "the bootloader verify without this slot",
        }


@dataclass(frozen=True)
class RotationPlan:
    """A rotation from ``old`` keys to ``new`` (build with :func:`plan_rotation` or :meth:`from_dict`)."""

    scheme: str
    new: PlannedKey
    old: tuple[PlannedKey, ...]

    @property
    def revocations(self) -> tuple[Revocation, ...]:
        """The revoke bits to burn, one per old key, in slot order."""
        return tuple(Revocation(k.slot, k.sbv2_digest) for k in sorted(self.old, key=lambda k: k.slot))

    @property
    def transition_fingerprints(self) -> tuple[str, ...]:
        """Key fingerprints in signature-block order for transition images: the new key first."""
        return (self.new.fingerprint, *(k.fingerprint for k in self.old))

    def steps(self) -> list[str]:
        """The procedure in words, for people."""
        old_slots = ", ".join(str(k.slot) for k in self.old)
        return [
            f"1. Sign releases with {len(self.old) + 1} Secure Boot v2 blocks: new key (slot {self.new.slot}) first, "
            f"then the old key(s) (slot {old_slots}).",
            "2. Publish the TUF root rotation (root N+1 signed by the old and the new root keys) with the release.",
            "3. On each device, after the transition release is booted and confirmed (VALID): burn "
            + ", ".join(r.efuse_field for r in self.revocations)
            + " (medfw keys revoke --plan PLAN --device DIR).",
            f"4. From then on sign with the new key only; devices refuse images signed only by slot(s) {old_slots}.",
        ]

    def to_dict(self) -> dict[str, Any]:
        """The plan file content (no secrets: key ids, fingerprints and digests)."""
        return {
            "format": PLAN_FORMAT,
            "scheme": self.scheme,
            "new_key": self.new.to_dict(),
            "old_keys": [k.to_dict() for k in self.old],
            "transition_block_order": list(self.transition_fingerprints),
            "revocations": [r.to_dict() for r in self.revocations],
            "steps": self.steps(),
        }

    @classmethod
    def from_dict(cls, data: object, *, path: str | None = None) -> RotationPlan:
        """Parse a plan file.

        Raises:
            ConfigError: not a plan, or a malformed field (named).
        """
        try:
            if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
                raise ConfigError(f"not a {PLAN_FORMAT} plan", field="format")
            scheme = data.get("scheme")
            if not isinstance(scheme, str):
                raise ConfigError("scheme must be a string", field="scheme")
            old = data.get("old_keys")
            if not isinstance(old, list) or not 1 <= len(old) <= 2:
                raise ConfigError("old_keys must list one or two keys", field="old_keys")
            plan = cls(
                scheme,
                PlannedKey.from_dict(data.get("new_key"), "new_key"),
                tuple(PlannedKey.from_dict(k, f"old_keys[{i}]") for i, k in enumerate(old)),
            )
            slots = [plan.new.slot, *(k.slot for k in plan.old)]
            if len(set(slots)) != len(slots):
                raise ConfigError("two keys of the plan share an eFuse slot", field="efuse_slot")
            return plan
        except ConfigError as e:
            raise (e.with_path(path) if path else e) from None


def _planned(key_id: str, key: PublicKey, slots: Sequence[KeySlotView], role: str) -> PlannedKey:
    digest = sbv2.public_key_digest(key)
    matches = [s for s in slots if s.digest is not None and hmac.compare_digest(s.digest, digest[: len(s.digest)])]
    if not matches:
        raise PolicyViolationError(
            f"the {role} key's Secure Boot v2 digest {digest.hex()} is not burned on the device; "
            + (
                "burn it into a free digest slot first (devices would refuse images signed only with it)"
                if role == "new"
                else "the device does not trust it, so there is nothing to rotate away from"
            ),
            path=key_id,
            field="key_digest",
        )
    usable = [s for s in matches if not s.revoked]
    if not usable:
        raise PolicyViolationError(f"the {role} key's eFuse slot {matches[0].index} is already revoked", path=key_id)
    return PlannedKey(key_id, public_key_fingerprint(key), digest, usable[0].index)


def plan_rotation(
    slots: Sequence[KeySlotView],
    new: tuple[str, PublicKey],
    old: Sequence[tuple[str, PublicKey]],
) -> RotationPlan:
    """Plan a rotation from ``old`` keys to ``new`` for a device with the given eFuse key slots.

    Args:
        slots: the device's digest slots (``Efuses.key_slots()``), in index order.
        new: ``(key id, public key)`` of the key to move to.
        old: ``(key id, public key)`` of the key(s) to retire (one or two).

    Raises:
        UsageError: no old key, more than three keys in all, or the new key is also listed as old.
        KeyMaterialError: a key cannot sign Secure Boot v2, or the keys' schemes differ.
        PolicyViolationError: the new key is not burned in a usable slot, or an old key is not trusted / already
            revoked.
    """
    if not old:
        raise UsageError("name at least one old key to rotate away from", field="--old")
    if 1 + len(old) > sbv2.MAX_BLOCKS:
        raise UsageError(f"a transition image holds at most {sbv2.MAX_BLOCKS} signature blocks", field="--old")
    schemes = {sbv2.scheme_of_key(key, path=key_id) for key_id, key in (new, *old)}
    if len(schemes) != 1:
        raise KeyMaterialError(
            "old and new keys must use one Secure Boot v2 scheme (a device verifies one scheme): "
            + ", ".join(sorted(map(str, schemes)))
        )
    new_key = _planned(new[0], new[1], slots, "new")
    old_keys = tuple(_planned(key_id, key, slots, "old") for key_id, key in old)
    for k in old_keys:
        if k.fingerprint == new_key.fingerprint or k.slot == new_key.slot:
            raise UsageError("the new key is also listed as an old key", path=k.key_id, field="--old")
    if len({k.slot for k in old_keys}) != len(old_keys):
        raise UsageError("an old key is listed twice", field="--old")
    return RotationPlan(str(schemes.pop()), new_key, old_keys)


def sign_transition(data: bytes, plan: RotationPlan, signers: Sequence[Signer], audit: AuditSink) -> bytes:
    """Sign ``data`` with every key of the plan (new key first) — the image that boots before and after revocation.

    Raises:
        UsageError: the signers are not exactly the plan's keys.
        (and whatever :func:`medfw.image.sbv2.sign_image` raises)
    """
    by_fp = {public_key_fingerprint(s.public_key()): s for s in signers}
    missing = [fp for fp in plan.transition_fingerprints if fp not in by_fp]
    if missing or len(by_fp) != len(plan.transition_fingerprints):
        raise UsageError(
            "the signing keys must be exactly the plan's new and old keys "
            f"({len(plan.transition_fingerprints)} expected, {len(missing)} missing)",
            field="--key",
        )
    ordered = [by_fp[fp] for fp in plan.transition_fingerprints]
    signed = sbv2.sign_image(data, ordered)
    audit.record(
        AuditEvent(
            type="key.rotate",
            outcome="success",
            reason="transition_image_signed",
            actor=plan.new.key_id,
            objects={
                "image_sha256": _sha256(signed),
                "new_key_fingerprint": plan.new.fingerprint,
                "new_key_digest": plan.new.sbv2_digest.hex(),
            },
            data={"phase": "sign", "block_order": list(plan.transition_fingerprints)},
        )
    )
    return signed


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rotate_tuf_root(
    repo: TufRepository,
    old_root: Sequence[Signer],
    new_root: Sequence[Signer],
    audit: AuditSink,
    *,
    threshold: int = 1,
) -> int:
    """Rotate the TUF root keys of ``repo`` (a :class:`medfw.update.repository.TufRepository`); return the new version.

    Root N+1 is signed by the old root keys (meeting root N's threshold) and the new ones (meeting the new threshold),
    so clients holding root N accept it. The medfw signers may be key files or token keys.

    Raises:
        UsageError / VerificationError: from the repository (threshold not met, no keys).
    """
    from medfw.update.tuf_signer import MedfwTufSigner  # noqa: PLC0415 - TUF is only needed for this step

    old_signers = [MedfwTufSigner(s) for s in old_root]
    new_signers = [MedfwTufSigner(s) for s in new_root]
    root = repo.rotate(
        "root",
        [s.public_key for s in new_signers],
        old_root_signers=old_signers,
        new_root_signers=new_signers,
        threshold=threshold,
    )
    version = int(root.signed.version)
    audit.record(
        AuditEvent(
            type="key.rotate",
            outcome="success",
            reason="tuf_root_rotated",
            actor="tuf-root",
            objects={"root_sha256": _sha256(repo.root_bytes())},
            data={
                "phase": "tuf",
                "root_version": version,
                "old_keyids": [s.key_id for s in old_signers],
                "new_keyids": [s.key_id for s in new_signers],
                "new_key_fingerprints": [public_key_fingerprint(s.public_key()) for s in new_root],
            },
        )
    )
    return version


def revoke_on_device(device: RevokingDevice, slots: Sequence[KeySlotView], plan: RotationPlan) -> list[int]:
    """Burn the plan's revoke bits on one device, the conservative way; return the slots revoked.

    The plan's digests must match the device's slots (a plan made for another key layout is refused). Slots already
    revoked are skipped. The device itself checks that its running app is confirmed and that the app and the
    bootloader verify without the slot, and records a ``key.revoke`` event either way.

    Raises:
        PolicyViolationError: the device's slot holds a different digest than the plan says.
        DeviceError subclasses: the device refuses (not confirmed, would not boot without the key, ...).
    """
    by_index = {s.index: s for s in slots}
    done: list[int] = []
    for rev in plan.revocations:
        slot = by_index.get(rev.slot)
        if (
            slot is None
            or slot.digest is None
            or not hmac.compare_digest(slot.digest, rev.key_digest[: len(slot.digest)])
        ):
            raise PolicyViolationError(
                f"device eFuse slot {rev.slot} does not hold the plan's old key digest {rev.key_digest.hex()}; "
                "this plan was made for another key layout",
                field=f"revocations[{rev.slot}]",
            )
        if slot.revoked:
            continue
        device.revoke_key(rev.slot)
        done.append(rev.slot)
    return done
