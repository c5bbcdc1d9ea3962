"""The one exception hierarchy of medfw.

Every error raised on purpose by medfw derives from :class:`MedfwError`. Errors carry where the problem is
(file, field, byte offset) as attributes, and :meth:`MedfwError.diagnostics` renders them for people.
The CLI catches :class:`MedfwError` once at the top and exits with :attr:`MedfwError.exit_code`:

* 1 — a verification failed or a policy was violated (:class:`VerificationError`, :class:`IntegrityError`,
  :class:`PolicyViolationError`)
* 2 — bad input or usage (everything else)
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "ConfigError",
    "DeviceError",
    "EvidenceError",
    "FeedError",
    "HSMError",
    "InputError",
    "IntegrityError",
    "KeyMaterialError",
    "MalformedImageError",
    "ManifestError",
    "MedfwError",
    "PolicyViolationError",
    "RollbackError",
    "SignatureError",
    "StorageError",
    "TransportError",
    "UsageError",
    "VerificationError",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class MedfwError(Exception):
    """Root of all medfw errors.

    Args:
        message: what is wrong, in one sentence.
        path: the file (or URL, or key URI) the problem is in.
        field: the field or key inside it.
        offset: the byte offset inside it.
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        field: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.field = field
        self.offset = offset

    def where(self) -> str:
        """Return ``file: field @ 0xOFFSET`` for the parts that are known (may be empty)."""
        parts: list[str] = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.field is not None:
            parts.append(f"field {self.field}")
        if self.offset is not None:
            parts.append(f"offset {self.offset} (0x{self.offset:x})")
        return ", ".join(parts)

    def diagnostics(self) -> str:
        """Return the human-readable one-line explanation printed by the CLI."""
        where = self.where()
        return f"{self.message} [{where}]" if where else self.message

    def with_path(self, path: str) -> MedfwError:
        """Attach a path if none is set yet and return self (for re-raising at I/O edges)."""
        if self.path is None:
            self.path = path
        return self

    def __str__(self) -> str:
        return self.diagnostics()


class InputError(MedfwError):
    """Input is malformed: bad bytes, bad file, bad option value."""


class UsageError(InputError):
    """The command or API was used wrongly (conflicting or missing options)."""


class MalformedImageError(InputError):
    """A firmware image, signature block or TLV area cannot be parsed."""


class KeyMaterialError(InputError):
    """A key file or key URI cannot be used (not a key, wrong type, wrong size)."""


class ManifestError(InputError):
    """An SBOM manifest, project description or SBOM document is malformed."""


class FeedError(InputError):
    """A vulnerability feed file is malformed or of the wrong format."""


class ConfigError(InputError):
    """A configuration or policy file is malformed."""


class DeviceError(InputError):
    """A device directory or device state file is unusable."""


class EvidenceError(InputError):
    """An evidence bundle cannot be built or read."""


class AuditError(InputError):
    """An audit log, key, checkpoint or proof cannot be read."""


class StorageError(MedfwError):
    """A database or file store failed."""


class TransportError(MedfwError):
    """A network transfer failed."""


class HSMError(MedfwError):
    """A PKCS#11 token operation failed. Never carries the PIN."""


class VerificationError(MedfwError):
    """A check failed: a signature, digest, proof or chain does not verify."""

    exit_code = EXIT_FAILED


class IntegrityError(VerificationError):
    """Integrity data of a recognised format is damaged: a signature block or TLV area whose CRC, layout,
    digest, key or signature fields do not check out. The input is the right format but was altered (exit 1);
    only input that is not the format at all (wrong magic, truncated header) is :class:`MalformedImageError`.
    """


class SignatureError(VerificationError):
    """A signature does not verify or no trusted key matches."""


class RollbackError(VerificationError):
    """An image or metadata would roll the device back below its anti-rollback counter."""

    def __init__(self, message: str, *, current: int, offered: int, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.current = current
        self.offered = offered


class PolicyViolationError(VerificationError):
    """A security policy requirement is not met."""
