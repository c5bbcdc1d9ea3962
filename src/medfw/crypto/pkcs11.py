"""Keys in a PKCS#11 token (HSM, smart card, SoftHSM2): the :class:`Pkcs11Signer` backend, key generation, export.

A key is named by an RFC 7512 URI (:mod:`medfw.crypto.uri`), e.g.
``pkcs11:token=release;object=fw-sign-2026?module-path=/usr/lib/softhsm/libsofthsm2.so``.

* **Module**: the URI's ``module-path``, else ``$MEDFW_PKCS11_MODULE``, else SoftHSM2's Debian path.
* **PIN**: the URI's ``pin-source=file:/path`` (or an absolute path), else the file named by
  ``$MEDFW_PKCS11_PIN_FILE``, else ``$MEDFW_PKCS11_PIN``; a token with a protected authentication path (PIN pad)
  needs none. ``pin-value`` in the URI is refused: a PIN on a command line leaks into shell history and process
  lists. The PIN is held only in memory, and never appears in ``repr()``, an error or the audit log.
* **Mechanisms**: signing is digest-first, so tokens that only offer the bare mechanisms work: RSA-3072 uses
  ``CKM_RSA_PKCS_PSS`` on the host-computed digest (MGF1 with the same hash, salt = digest length); ECDSA P-256 and
  P-384 use raw ``CKM_ECDSA`` on the host digest, and the ``r || s`` result is converted to DER; Ed25519 uses
  ``CKM_EDDSA`` on the message. Every signature is verified on the host against the token's public key before it
  is returned, so a faulty token cannot produce a bad release.
* **Errors**: everything a token can report (wrong PIN, missing token, no such object, an object of the wrong
  class/type/curve, a mechanism the token lacks) is an :class:`~medfw.errors.HSMError` naming the token, the
  object and the mechanism.

Every operation opens its own session and closes it (logging out), so a signer holds no token state between
signatures apart from the cached public key. :func:`generate_keypair` makes a key in the token
(:func:`medfw.keys.hsm.generate_key` audits it); signatures are audited (and gated by approvals) by wrapping the
signer in :class:`medfw.keys.guard.GuardedSigner`. This package imports nothing above :mod:`medfw.crypto`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from pkcs11 import MGF, Attribute, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import KeyType as P11KeyType

from medfw.crypto import pkcs11_keys
from medfw.crypto.keys import KeyType, PublicKey, key_type_of, public_key_fingerprint
from medfw.crypto.pkcs11_token import (
    DEFAULT_MODULE,
    ENV_MODULE,
    ENV_PIN,
    ENV_PIN_FILE,
    _check_private,
    _check_type,
    _find_one,
    _find_token,
    _mech_name,
    _public_from_objects,
    _require_mechanism,
    _search,
    _session,
    _Target,
    _target,
    _translate,
)
from medfw.crypto.signer import HashName, Signer, hash_algorithm
from medfw.crypto.uri import Pkcs11Uri
from medfw.errors import KeyMaterialError

__all__ = [
    "DEFAULT_MODULE",
    "ENV_MODULE",
    "ENV_PIN",
    "ENV_PIN_FILE",
    "GeneratedKey",
    "Pkcs11Signer",
    "export_public",
    "generate_keypair",
    "public_key_fingerprint",
]


_PSS_HASH: dict[HashName, tuple[Mechanism, MGF]] = {
    HashName.SHA256: (Mechanism.SHA256, MGF.SHA256),
    HashName.SHA384: (Mechanism.SHA384, MGF.SHA384),
    HashName.SHA512: (Mechanism.SHA512, MGF.SHA512),
}
_KEYGEN: dict[KeyType, tuple[P11KeyType, Mechanism]] = {
    KeyType.RSA3072: (P11KeyType.RSA, Mechanism.RSA_PKCS_KEY_PAIR_GEN),
    KeyType.ECDSA_P256: (P11KeyType.EC, Mechanism.EC_KEY_PAIR_GEN),
    KeyType.ECDSA_P384: (P11KeyType.EC, Mechanism.EC_KEY_PAIR_GEN),
    KeyType.ED25519: (P11KeyType.EC_EDWARDS, Mechanism.EC_EDWARDS_KEY_PAIR_GEN),
}


class Pkcs11Signer(Signer):
    """A :class:`~medfw.crypto.signer.Signer` whose private key stays in a PKCS#11 token.

    Build with :meth:`from_uri`, which opens the token once to check the PIN, the key object, its type and curve,
    and reads the public key; later signatures each open a short session.
    """

    def __init__(self, target: _Target, public: PublicKey) -> None:
        self._target = target
        self._public = public
        self.key_id = target.key_id

    @classmethod
    def from_uri(cls, uri: str) -> Pkcs11Signer:
        """Open the private key a ``pkcs11:`` URI names.

        Args:
            uri: the RFC 7512 key URI (``pin-value`` is refused).

        Raises:
            KeyMaterialError: the URI is malformed or carries a PIN.
            HSMError: the module, token or key cannot be used (wrong PIN, no such token/object, wrong type or curve,
                a mechanism the token lacks).
        """
        t = _target(uri)
        _check_type(t, "signing", ("private",))
        token = _find_token(t)
        with _session(t, token) as session:
            private = _find_one(t, session, ObjectClass.PRIVATE_KEY)
            public = _public_from_objects(t, session, private)
            _check_private(t, private, public)
        signer = cls(t, public)
        _require_mechanism(t, token, signer._mechanism())
        return signer

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.key_id!r})"

    def public_key(self) -> PublicKey:
        return self._public

    def _mechanism(self) -> Mechanism:
        kind = key_type_of(self._public)
        if kind is KeyType.RSA3072:
            return Mechanism.RSA_PKCS_PSS
        if kind is KeyType.ED25519:
            return Mechanism.EDDSA
        return Mechanism.ECDSA

    def _token_sign(self, data: bytes, mechanism: Mechanism, param: Any = None) -> bytes:
        t = self._target
        token = _find_token(t)
        _require_mechanism(t, token, mechanism)
        with _session(t, token) as session:
            private = _find_one(t, session, ObjectClass.PRIVATE_KEY)
            try:
                if param is None:
                    sig: bytes = private.sign(data, mechanism=mechanism)
                else:
                    sig = private.sign(data, mechanism=mechanism, mechanism_param=param)
            except pkcs11.PKCS11Error as e:
                raise _translate(t, e, "sign", mechanism) from None
            return bytes(sig)

    def _sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        mechanism = self._mechanism()
        alg = hash_algorithm(hash_name)
        pre = utils.Prehashed(alg)
        public = self._public
        if isinstance(public, rsa.RSAPublicKey):
            hash_mech, mgf = _PSS_HASH[hash_name]
            sig = self._token_sign(digest, mechanism, (hash_mech, mgf, alg.digest_size))
            pss = padding.PSS(mgf=padding.MGF1(alg), salt_length=alg.digest_size)
            self._verify(lambda: public.verify(sig, digest, pss, pre), mechanism)
            return sig
        if isinstance(public, ec.EllipticCurvePublicKey):
            raw = self._token_sign(digest, mechanism)
            try:
                der = pkcs11_keys.ecdsa_raw_to_der(raw, (public.curve.key_size + 7) // 8)
            except KeyMaterialError as e:
                raise self._target.error(f"token returned a malformed signature: {e.message}", mechanism) from None
            self._verify(lambda: public.verify(der, digest, ec.ECDSA(pre)), mechanism)
            return der
        raise self._target.error("an Ed25519 key signs messages, not prehashed digests", mechanism)

    def _sign_message(self, message: bytes) -> bytes:
        mechanism = Mechanism.EDDSA
        public = self._public
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise self._target.error("only Ed25519 keys sign raw messages", mechanism)
        sig = self._token_sign(message, mechanism)
        self._verify(lambda: public.verify(sig, message), mechanism)
        return sig

    def _verify(self, check: Callable[[], None], mechanism: Mechanism) -> None:
        """Run a host-side signature check; a token signature that does not verify is an error."""
        try:
            check()
        except InvalidSignature:
            raise self._target.error(
                "the token returned a signature that does not verify with its public key", mechanism
            ) from None


@dataclass(frozen=True)
class GeneratedKey:
    """A key pair made inside a token: its public key and the non-secret facts an audit record needs."""

    public: PublicKey
    key_id: str
    token: str
    mechanism: str


def generate_keypair(uri: str, key_type: KeyType) -> GeneratedKey:
    """Generate a key pair inside the token: private key sensitive, non-extractable, stored on the token.

    The URI's ``object`` becomes the label of both halves, ``id`` (if given) their ``CKA_ID``. An existing object with
    the same label or id is never overwritten.

    Args:
        uri: ``pkcs11:token=…;object=…[;id=…]`` (a PIN source is required).
        key_type: the key type to generate.

    Returns:
        The new public key with the key id (URI without PIN), token label and mechanism. Auditing is the
        caller's: :func:`medfw.keys.hsm.generate_key` records ``key.generate``.

    Raises:
        KeyMaterialError: the URI is malformed, carries a PIN, or names no object label.
        HSMError: the token cannot generate the key (wrong PIN, mechanism missing, object exists, ...) or did not
            honour the non-extractable template (the key is then destroyed).
    """
    t = _target(uri)
    if t.uri.object is None:
        raise KeyMaterialError(
            "generating a key needs a label: add object=NAME to the URI", path=t.key_id, field="object"
        )
    _check_type(t, "key generation", ("private", "public"))
    ckk, mechanism = _KEYGEN[key_type]
    token = _find_token(t)
    _require_mechanism(t, token, mechanism)
    public_template: dict[Attribute, Any] = {Attribute.TOKEN: True, Attribute.PRIVATE: False}
    private_template: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    key_length: int | None = None
    if key_type is KeyType.RSA3072:
        key_length = 3072
    else:
        public_template[Attribute.EC_PARAMS] = pkcs11_keys.curve_for(key_type).params
    with _session(t, token, rw=True) as session:
        lookup = Pkcs11Uri(object=t.uri.object)
        if _search(session, lookup, None, limit=1) or (
            t.uri.id is not None and _search(session, Pkcs11Uri(id=t.uri.id), None, limit=1)
        ):
            raise t.error("an object with this label or id already exists in the token; not overwriting it")
        try:
            _, private = session.generate_keypair(
                ckk,
                key_length,
                id=t.uri.id,
                label=t.uri.object,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                mechanism=mechanism,
                public_template=public_template,
                private_template=private_template,
            )
        except pkcs11.PKCS11Error as e:
            raise _translate(t, e, "generate key pair", mechanism) from None
        if private[Attribute.EXTRACTABLE] is not False or private[Attribute.SENSITIVE] is not True:
            with contextlib.suppress(pkcs11.PKCS11Error):
                private.destroy()
            raise t.error("the token did not make the key sensitive and non-extractable; key destroyed", mechanism)
        public = _public_from_objects(t, session, private)
        if key_type_of(public) is not key_type:
            raise t.error(f"the token generated a {key_type_of(public)} key, not {key_type}", mechanism)
        token_label = str(token.label)
    return GeneratedKey(public=public, key_id=t.key_id, token=token_label, mechanism=_mech_name(mechanism))


def export_public(uri: str) -> PublicKey:
    """Read the public key of the key pair a ``pkcs11:`` URI names (no PIN needed when the public object is public).

    Raises:
        KeyMaterialError: the URI is malformed or carries a PIN.
        HSMError: no such token or object, or the key is of a type/curve medfw does not use.
    """
    t = _target(uri)
    _check_type(t, "exporting a public key", ("public", "private"))
    token = _find_token(t)
    login = t.pin.value is not None
    with _session(t, token, login=login) as session:
        if not _search(session, t.uri, ObjectClass.PUBLIC_KEY, limit=1) and not login:
            raise t.error(f"no public key object visible without login: set ${ENV_PIN} or ${ENV_PIN_FILE}")
        private = None
        if login:
            found = _search(session, t.uri, ObjectClass.PRIVATE_KEY, limit=2)
            private = found[0] if len(found) == 1 else None
        return _public_from_objects(t, session, private)
