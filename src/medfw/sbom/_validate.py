"""Validators for the identifiers that go into an SBOM: CPE 2.3 names, package URLs, SPDX license expressions."""

from __future__ import annotations

import datetime as dt
import re

from license_expression import get_spdx_licensing  # type: ignore[import-untyped]
from packageurl import PackageURL

from medfw.errors import ManifestError

__all__ = ["check_cpe", "check_cve_id", "check_date", "check_license", "check_purl"]

# CPE 2.3 formatted string binding, NISTIR 7695 §6.2 (the regular expression of the CPE 2.3 dictionary schema).
_AV = r"""(?:[*?]?(?:[a-zA-Z0-9\-._]|\\[\\*?!"#$%&'()+,/:;<=>@\[\]^`{|}~])+[*?]*|[*\-])"""
_CPE23_RE = re.compile(
    r"^cpe:2\.3:[aho*\-]" + (r":" + _AV) * 10 + r"$",
)
_CVE_RE = re.compile(r"^(?:CVE-\d{4}-\d{4,19}|GHSA(?:-[0-9a-z]{4}){3}|[A-Z][A-Z0-9]*-[A-Za-z0-9._:-]+)$")
_LICENSE_REF_RE = re.compile(r"^(?:DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+$")
_LICENSING = get_spdx_licensing()


def check_cpe(value: str, *, path: str | None = None, key: str = "cpe") -> str:
    """Return ``value`` if it is a well-formed CPE 2.3 formatted string, else raise :class:`ManifestError`."""
    if not isinstance(value, str) or not _CPE23_RE.match(value):
        raise ManifestError(f"malformed CPE 2.3 name {value!r}", path=path, field=key)
    return value


def check_purl(value: str, *, path: str | None = None, key: str = "purl") -> str:
    """Return the canonical form of package URL ``value``, or raise :class:`ManifestError`."""
    if not isinstance(value, str) or not value.startswith("pkg:"):
        raise ManifestError(f"malformed package URL {value!r} (must start with 'pkg:')", path=path, field=key)
    try:
        return str(PackageURL.from_string(value).to_string())
    except ValueError as e:
        raise ManifestError(f"malformed package URL {value!r}: {e}", path=path, field=key) from None


def check_license(value: str, *, path: str | None = None, key: str = "license") -> str:
    """Return the normalised SPDX license expression, or raise :class:`ManifestError`.

    Every identifier must be on the SPDX license list, or be a ``LicenseRef-…`` custom license.
    """
    if not isinstance(value, str) or not value.strip():
        raise ManifestError("license expression is empty", path=path, field=key)
    try:
        info = _LICENSING.validate(value)
    except Exception as e:  # license-expression raises assorted internal errors on garbage
        raise ManifestError(f"invalid SPDX license expression {value!r}: {e}", path=path, field=key) from None
    invalid = [s for s in info.invalid_symbols if not _LICENSE_REF_RE.match(str(s))]
    other_errors = [e for e in info.errors if not e.startswith("Unknown license key")]
    if invalid or other_errors:
        detail = "; ".join(other_errors) or f"unknown license identifier(s): {', '.join(map(str, invalid))}"
        raise ManifestError(f"invalid SPDX license expression {value!r}: {detail}", path=path, field=key)
    normalized = info.normalized_expression
    return str(normalized) if normalized else value.strip()


def check_date(value: object, *, path: str | None = None, key: str = "end-of-support") -> str:
    """Return an ISO 8601 date (``YYYY-MM-DD``) or ``unknown``; raise :class:`ManifestError` otherwise."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        if value == "unknown":
            return value
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ManifestError(f"{value!r} is not an ISO 8601 date (YYYY-MM-DD) or 'unknown'", path=path, field=key)


def check_cve_id(value: object, *, path: str | None = None, key: str = "cve-exclude-list") -> str:
    """Return a vulnerability id (``CVE-2024-1234``, ``GHSA-…``, ``OSV-…``) or raise :class:`ManifestError`."""
    if not isinstance(value, str) or not _CVE_RE.match(value):
        raise ManifestError(f"malformed vulnerability id {value!r}", path=path, field=key)
    return value
