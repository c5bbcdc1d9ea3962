"""Request bodies of the device-trust management API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CampaignCreate", "EnrollmentDecision", "ModelGroupIn", "PreauthorizeIn", "RevokeIn", "WindowIn"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class PreauthEntry(_In):
    """One pre-authorised unit: its serial (the device id in its certificate) and model."""

    serial: str = Field(pattern=_ID)
    model: str = Field(pattern=_ID)


class PreauthorizeIn(_In):
    """A list of serials that may enrol themselves on first contact."""

    serials: list[PreauthEntry] = Field(max_length=10_000)


class EnrollmentDecision(_In):
    """Approve or reject a held enrollment."""

    approve: bool
    group: str | None = Field(default=None, pattern=_ID)


class ModelGroupIn(_In):
    """The group a model's units enrol into."""

    group: str = Field(pattern=_ID)


class RevokeIn(_In):
    """Revoke a device's certificates."""

    reason: str = Field(default="revoked", pattern=r"^[a-z_]{1,32}$")


class WindowIn(_In):
    """A group's maintenance window."""

    timezone: str = Field(max_length=64)
    days: list[str] = Field(max_length=7)
    start: str = Field(pattern=r"^\d\d:\d\d$")
    end: str = Field(pattern=r"^\d\d:\d\d$")


class CampaignCreate(_In):
    """Start a key-rotation campaign: roll out the dual-signed release, burn the new key, revoke the old slot."""

    release: str | int
    old_slot: int = Field(ge=0, le=2)
    new_key: str = Field(max_length=4096, description="the new Secure Boot public key (PEM)")
    approvals: list[dict[str, Any]] = Field(min_length=1, max_length=32)
    group: str | None = Field(default=None, pattern=_ID)
    devices: list[str] | None = Field(default=None, max_length=100_000)
    phases: list[str] = Field(default_factory=lambda: ["10%", "100%"], min_length=1, max_length=20)
    success_threshold: int = Field(default=90, ge=1, le=100)
    error_threshold: int = Field(default=10, ge=1, le=100)
