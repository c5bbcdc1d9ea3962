"""The example team's triage: a closing decision for every finding of the example firmware.

The ESP-IDF findings were analysed one by one (:data:`TRIAGE`: what each advisory names and why this build is not
affected — the linker map of ``examples/device`` lists no Bluetooth, BluFi, ESP-TEE, HTTP server, protocomm or JPEG
code, and the pump runs Wi-Fi in station mode only, so lwIP's DHCP server never runs). Anything else — the Mbed TLS
findings, and any finding a newer feed adds — is treated as exploitable and fixed by updating the component, with
a due date (:data:`FIX_DUE`).
"""

from __future__ import annotations

from typing import Any

from medfw.vuln.vocabulary import Justification, Response, State

__all__ = ["FIX_DUE", "TRIAGE", "decision_for"]

_NOT_LINKED = Justification.CODE_NOT_PRESENT
TRIAGE: dict[str, tuple[str, str]] = {
    "CVE-2025-55297": (_NOT_LINKED, "BluFi example (Bluetooth provisioning): not built into this firmware."),
    "CVE-2025-64342": (_NOT_LINKED, "BLE controller advertising: the Bluetooth controller is not linked."),
    "CVE-2025-66409": (_NOT_LINKED, "BlueDroid AVRCP: the Bluetooth host stack is not linked."),
    "CVE-2025-68473": (_NOT_LINKED, "BlueDroid SDP (bta_dm_sdp_result): the Bluetooth host stack is not linked."),
    "CVE-2025-68474": (_NOT_LINKED, "BlueDroid AVRCP vendor commands: the Bluetooth host stack is not linked."),
    "CVE-2026-45160": (
        "code_not_reachable",
        "lwIP DHCP server option parser: runs only in SoftAP mode; the pump is a Wi-Fi station only.",
    ),
    "CVE-2026-45328": (_NOT_LINKED, "ESP-TEE secure-service wrappers: esp_tee is not part of this build."),
    "CVE-2026-45329": (_NOT_LINKED, "ESP-TEE secure-service wrappers: esp_tee is not part of this build."),
    "CVE-2026-45541": (_NOT_LINKED, "esp_http_server WebSocket handshake: esp_http_server is not linked."),
    "CVE-2026-45542": (_NOT_LINKED, "protocomm Security Scheme 2: protocomm is not linked."),
    "CVE-2026-46532": (_NOT_LINKED, "BlueDroid AVRCP vendor-command parser: the Bluetooth host stack is not linked."),
    "CVE-2026-55687": (_NOT_LINKED, "esp_driver_jpeg DQT parser: no JPEG driver (the ESP32-C3 has no JPEG codec)."),
}
#: Due date the team sets for fixing an exploitable finding in the field.
FIX_DUE = "2027-01-31"


def decision_for(finding: dict[str, Any], *, fixed_in: str) -> tuple[str, list[str], str]:
    """``(state, extra argv, detail)`` of the team's decision for one finding of a release."""
    analysed = TRIAGE.get(str(finding.get("vuln_id")))
    if analysed is not None:
        return State.NOT_AFFECTED, ["--justification", analysed[0]], analysed[1]
    return (
        State.EXPLOITABLE,
        ["--response", Response.UPDATE],
        f"Fixed by updating {finding.get('component', 'the component')} in release {fixed_in}, due {FIX_DUE}.",
    )
