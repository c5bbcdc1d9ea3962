"""Audited key generation inside a PKCS#11 token.

:func:`medfw.crypto.pkcs11.generate_keypair` makes the key; this layer records the ``key.generate`` audit event
(key URI without PIN, fingerprint and token label, never key material), so the crypto layer depends on nothing
above it.
"""

from __future__ import annotations

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.crypto.keys import KeyType, PublicKey, public_key_fingerprint
from medfw.crypto.uri import Pkcs11Uri
from medfw.errors import HSMError, KeyMaterialError

__all__ = ["generate_key"]


def _key_id(uri: str) -> str:
    try:
        return Pkcs11Uri.parse(uri).key_id()
    except KeyMaterialError:
        return "pkcs11:<malformed URI>"


def generate_key(uri: str, key_type: KeyType, *, audit: AuditSink | None = None) -> PublicKey:
    """Generate a non-extractable key pair in the token ``uri`` names and audit it.

    Raises:
        KeyMaterialError: the URI is malformed, carries a PIN, or names no object label.
        HSMError: the token cannot generate the key (recorded as a ``key.generate`` failure).
    """
    from medfw.crypto.pkcs11 import generate_keypair  # noqa: PLC0415 - python-pkcs11 loads only when a token is used

    sink: AuditSink = audit if audit is not None else NullSink()
    try:
        made = generate_keypair(uri, key_type)
    except HSMError as e:
        sink.record(
            AuditEvent(
                type="key.generate",
                outcome="failure",
                reason="token_error",
                actor=_key_id(uri),
                data={"key_type": str(key_type), "error": e.message},
            )
        )
        raise
    sink.record(
        AuditEvent(
            type="key.generate",
            outcome="success",
            actor=made.key_id,
            objects={
                "key_uri": made.key_id,
                "key_fingerprint": public_key_fingerprint(made.public),
                "token": made.token,
            },
            data={"key_type": str(key_type), "mechanism": made.mechanism, "extractable": False},
        )
    )
    return made.public
