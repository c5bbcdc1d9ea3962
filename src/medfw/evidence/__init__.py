"""Release evidence bundles: build one signed, offline-verifiable directory per release, and verify it.

Public API::

    spec = load_release_spec("release/")                        # release.yml
    result = build_bundle(spec, "bundle/", signer=load_signer("keys/evidence.pem"))
    report = verify_evidence("bundle/", key=load_public_key("evidence.pub.pem"))

The pure building blocks live in their own modules: :mod:`~medfw.evidence.manifest` (signed manifest),
:mod:`~medfw.evidence.scenario` (update path on the device model), :mod:`~medfw.evidence.efuse_check`,
:mod:`~medfw.evidence.binding` (VEX-to-SBOM binding), :mod:`~medfw.evidence.trace` (traceability matrix) and
:mod:`~medfw.evidence.report` (HTML report).
"""

from medfw.evidence.build import BuildResult, build_bundle
from medfw.evidence.spec import ImageSpec, ReleaseSpec, load_release_spec
from medfw.evidence.verify import Problem, VerifyResult, verify_evidence

__all__ = [
    "BuildResult",
    "ImageSpec",
    "Problem",
    "ReleaseSpec",
    "VerifyResult",
    "build_bundle",
    "load_release_spec",
    "verify_evidence",
]
