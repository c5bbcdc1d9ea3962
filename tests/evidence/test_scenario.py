"""The update-path scenario on the device model: confirm advances the counter, downgrades are refused, an
unconfirmed boot reverts, and every sampled power cut leaves a bootable unit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.evidence.scenario import UpdatePathRun, run_update_path, sample_points
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image

KEY = generate_private_key(KeyType.ECDSA_P256)
SIGNERS = [FileSigner(KEY)]
DIGEST = public_key_digest(KEY.public_key())
CHIP = "esp32c6"  # verifies ECDSA P-256 Secure Boot v2 signatures
BOOT = sign_image(
    build_app_image(chip=CHIP, version="bootloader", secure_version=0, project_name="bootloader"), SIGNERS
)


def _app(version: str, sv: int, size: int | None = 64 * 1024, chip: str = CHIP) -> bytes:
    return sign_image(build_app_image(chip=chip, version=version, secure_version=sv, size=size), SIGNERS)


def _update_from_1_0_0(*, secure_version: int) -> UpdatePathRun:
    """The scenario updating a unit running 1.0.0 (secure version 1) to 2.0.0 at ``secure_version``."""
    return run_update_path(
        chip=CHIP,
        key_digests=[DIGEST],
        bootloader=BOOT,
        app=_app("2.0.0", secure_version),
        app_secure_version=secure_version,
        previous=_app("1.0.0", 1),
    )


def _steps(result: dict) -> dict:
    return {s["step"]: s for s in result["steps"]}


def test_full_scenario_passes_with_numbers() -> None:
    run = _update_from_1_0_0(secure_version=3)
    r = run.result
    assert r["ok"], r["steps"]
    steps = _steps(r)
    assert steps["factory_boot"]["counter"] == 1
    assert steps["trial_boot"]["counter_before_confirm"] == 1
    assert steps["confirm"]["counter"] == 3 == r["counter_after_confirm"]
    assert steps["downgrade_refused"]["reason"] == "rollback"
    assert steps["unconfirmed_boot_reverts"]["reverted"] is True
    assert steps["unconfirmed_boot_reverts"]["counter_after"] == 1
    pc = r["power_cut"]
    assert pc["sector_writes"] == steps["install"]["sector_writes"] > 10
    assert pc["tried"] == pc["bootable"] == min(24, pc["sector_writes"])
    assert any(p["torn"] for p in pc["points"]) and any(not p["torn"] for p in pc["points"])
    assert run.efuse_summary["SECURE_VERSION"]["raw_value"] != "0x0000"


def test_same_secure_version_downgrade_is_not_refused_and_fails() -> None:
    run = _update_from_1_0_0(secure_version=1)
    assert run.result["ok"] is False
    assert _steps(run.result)["downgrade_refused"]["ok"] is False


def test_app_signed_by_an_untrusted_key_fails_cleanly() -> None:
    stranger = generate_private_key(KeyType.ECDSA_P256)
    app = sign_image(build_app_image(chip=CHIP, version="2.0.0", secure_version=2), [FileSigner(stranger)])
    run = run_update_path(chip=CHIP, key_digests=[DIGEST], bootloader=BOOT, app=app, app_secure_version=2)
    assert run.result["ok"] is False
    failed = [s for s in run.result["steps"] if not s["ok"]]
    assert failed and failed[0]["step"] in {"factory_boot", "model_error"}


def test_ecdsa_release_for_a_chip_that_verifies_rsa_only_fails() -> None:
    """ESP32-C3 verifies RSA-3072 Secure Boot v2 blocks only: an ECDSA-signed release cannot boot there."""
    boot = sign_image(
        build_app_image(chip="esp32c3", version="bootloader", secure_version=0, project_name="bootloader"), SIGNERS
    )
    run = run_update_path(
        chip="esp32c3",
        key_digests=[DIGEST],
        bootloader=boot,
        app=_app("2.0.0", 2, chip="esp32c3"),
        app_secure_version=2,
        previous=_app("1.0.0", 1, chip="esp32c3"),
    )
    assert run.result["ok"] is False
    failed = [s for s in run.result["steps"] if not s["ok"]]
    assert [s["step"] for s in failed] == ["model_error"]
    assert failed[0]["reason"] == "unsupported_scheme"


@pytest.mark.parametrize(("total", "samples", "expected"), [(0, 5, []), (3, 24, [0, 1, 2]), (10, 1, [0])])
def test_sample_points_examples(total: int, samples: int, expected: list[int]) -> None:
    assert sample_points(total, samples) == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 64))
def test_sample_points_properties(total: int, samples: int) -> None:
    pts = sample_points(total, samples)
    assert pts == sorted(set(pts))
    assert all(0 <= p < total for p in pts)
    assert len(pts) <= max(samples, 0)
    if total and samples >= 2:
        assert pts[0] == 0 and pts[-1] == total - 1
