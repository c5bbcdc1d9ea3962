"""``medfw ota``: the TUF update repository (offline steps), the fleet server, and operator commands.

Offline (keys never leave the release machine or HSM):
    ``ota repo init``, ``ota repo rotate``, ``ota release publish`` (:mod:`medfw.cli._ota_repo`,
    :mod:`medfw.cli._ota_release`).
Online (the server host): ``ota repo refresh``, ``ota serve``, ``ota token create`` (:mod:`medfw.cli._ota_serve`).
Operators (over the management API, ``--server`` / ``--token-file`` or ``MEDFW_OTA_SERVER`` / ``MEDFW_OTA_TOKEN``;
a secret is never an argument): ``ota device add|list``, ``ota rollout create|status|pause|resume|cancel``,
``ota release list``, ``ota fleet`` (:mod:`medfw.cli._ota_device`, :mod:`medfw.cli._ota_rollout`).
"""

from __future__ import annotations

from typing import Any

from medfw.cli import _ota_device, _ota_release, _ota_repo, _ota_rollout, _ota_serve
from medfw.cli._common import add_group

__all__ = ["register"]


def register(sub: Any) -> None:
    """Register the ``ota`` command group."""
    ota = add_group(sub, "ota", "signed OTA delivery: TUF repository, fleet server, rollouts")
    _ota_repo.register(ota)
    _ota_release.register(ota)
    _ota_serve.register(ota)
    _ota_device.register(ota)
    _ota_rollout.register(ota)
    _ota_device.register_fleet(ota)
