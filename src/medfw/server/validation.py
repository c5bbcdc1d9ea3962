"""What the server accepts from the network: one definition per kind of field, used by the request models, the
route parameters and the poll fast path alike.

Strings are bounded and restricted to a charset (no NUL, no control characters); integers are bounded to what the
database columns hold (a 32-bit signed ``INTEGER`` on both backends), so nothing a client sends reaches the database
as a value it cannot store.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field

__all__ = [
    "DEVICE_ID_PATTERN",
    "INT32_MAX",
    "NAME_PATTERN",
    "SLOT_PATTERN",
    "VERSION_PATTERN",
    "DeviceId",
    "Id32",
    "PrintableText",
    "ReportedVersion",
    "RolloutId",
    "SlotName",
    "check_reported",
    "printable",
]

INT32_MAX = 2**31 - 1
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
#: a version or reason as a device reports it: printable ASCII without spaces
VERSION_PATTERN = r"^[\x21-\x7e]{1,64}$"
SLOT_PATTERN = r"^[A-Za-z0-9_.-]{1,16}$"
_VERSION_RE = re.compile(VERSION_PATTERN)
_SLOT_RE = re.compile(SLOT_PATTERN)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """Refuse NUL and control characters other than tab and newline (free text such as a report's detail)."""
    if _CONTROL.search(text):
        raise ValueError("control characters (NUL included) are not allowed")
    return text


#: a device id in a URL path
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
#: a rollout id in a URL path
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: a database id (rollouts, releases): 1 … 2^31-1
Id32 = Annotated[int, Field(ge=1, le=INT32_MAX)]
#: a version as a device reports it
ReportedVersion = Annotated[str, Field(pattern=VERSION_PATTERN, max_length=64)]
#: a boot slot name (``ota_0``)
SlotName = Annotated[str, Field(pattern=SLOT_PATTERN, max_length=16)]
#: free text (tab and newline allowed, no NUL or other control characters)
PrintableText = Annotated[str, AfterValidator(printable)]


def check_reported(
    version: str | None, secure_version: str | None, slot: str | None
) -> tuple[str | None, int, str | None]:
    """Check a poll's query values; return them typed.

    Raises:
        ValueError: naming the field that is out of range or has characters it may not have.
    """
    if version is not None and not _VERSION_RE.match(version):
        raise ValueError("version")
    if slot is not None and not _SLOT_RE.match(slot):
        raise ValueError("slot")
    svn_text = "0" if secure_version is None else secure_version
    if not (svn_text.isascii() and svn_text.isdigit()) or len(svn_text) > 10 or int(svn_text) > INT32_MAX:
        raise ValueError("secure_version")
    return version, int(svn_text), slot
