"""CSAF 2.0 advisories out: profiles, product tree, statuses, schema + mandatory tests, signature.

Validation is done twice: against the official OASIS CSAF 2.0 JSON schema bundled in the package (with the FIRST
CVSS schemas, offline) plus medfw's mandatory tests, and against an independent validator installed from a
package registry: BSI's ``@secvisogram/csaf-validator-lib`` 2.0.10 from npm (MIT), run with Node.js — its
strict CSAF 2.0 schema test and every mandatory test (6.1.x). The npm package is installed once into the pytest
cache directory; the test is skipped only when Node.js/npm are missing or the registry cannot be reached.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from medfw.audit.sink import MemorySink
from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.errors import InputError, VerificationError
from medfw.vuln import record_decision
from medfw.vuln.carryover import register_release
from medfw.vuln.csaf_advisory import build_advisory, sign_advisory, verify_advisory
from medfw.vuln.csaf_validate import check_csaf, mandatory_problems, schema_problems
from medfw.vuln.index import VulnIndex

from .test_carryover import EXPAT, MBEDTLS, release_sbom

VALIDATOR = "@secvisogram/csaf-validator-lib@2.0.10"
SCRIPT = """
import validateStrict from '@secvisogram/csaf-validator-lib/validateStrict.js'
import * as schema from '@secvisogram/csaf-validator-lib/schemaTests.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import { readFileSync } from 'node:fs'
const out = []
for (const path of process.argv.slice(2)) {
  const doc = JSON.parse(readFileSync(path, 'utf8'))
  const res = await validateStrict([schema.csaf_2_0_strict, ...Object.values(mandatory)], doc)
  const failed = res.tests.filter(t => !t.isValid || t.errors.length).map(t => ({name: t.name, errors: t.errors}))
  out.push({isValid: res.isValid, tests: res.tests.length, failed})
}
console.log(JSON.stringify(out))
"""


@pytest.fixture(scope="session")
def bsi_validator() -> Path:
    """A directory with the BSI validator installed from npm (once, under a lock) and a runner script."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js / npm not installed")
    base = Path(os.environ.get("MEDFW_TEST_CACHE", Path.home() / ".cache" / "medfw-tests"))
    root = base / "csaf-validator-lib-2.0.10"
    root.mkdir(parents=True, exist_ok=True)
    with (base / "csaf-validator-lib.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "node_modules" / "@secvisogram" / "csaf-validator-lib" / "package.json").is_file():
            proc = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root), VALIDATOR],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                pytest.skip(f"npm registry not reachable: {proc.stderr[-300:]}")
        (root / "validate.mjs").write_text(SCRIPT, encoding="utf-8")
    return root


def bsi_validate(root: Path, docs: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """Run the BSI validator once over several documents; one result per document."""
    paths = []
    for i, doc in enumerate(docs):
        paths.append(tmp_path / f"doc{i}.json")
        paths[-1].write_text(json.dumps(doc), encoding="utf-8")
    out = subprocess.run(
        ["node", str(root / "validate.mjs"), *map(str, paths)], capture_output=True, text=True, timeout=900, check=True
    ).stdout
    result: list[dict[str, Any]] = json.loads(out)
    return result


def _two_releases(index: VulnIndex) -> None:
    sink = MemorySink()
    _, r1, _, _ = register_release(index, release_sbom("3.5.1", fw_version="1.0.0"), sink=sink)
    register_release(index, release_sbom("3.6.4", fw_version="1.1.0"), sink=sink)
    record_decision(
        index, r1, "CVE-2024-8176", EXPAT, state="not_affected", justification="requires_configuration",
        detail="XML_DTD disabled", author="alice", sink=sink,
    )  # fmt: skip
    record_decision(
        index, r1, "CVE-2025-27810", MBEDTLS, state="exploitable", responses=("update",),
        detail="reachable from the TLS client; upgrade", author="alice", sink=sink,
    )  # fmt: skip


def test_security_advisory_names_the_fix_and_validates(full_index: VulnIndex, tmp_path: Path) -> None:
    _two_releases(full_index)
    doc = build_advisory(full_index, "1", publisher="Example Medical", namespace="https://example-medical.invalid",
                         models=["pump", "pump-xl"])  # fmt: skip
    assert doc["document"]["category"] == "csaf_security_advisory"
    assert schema_problems(doc) == [] and mandatory_problems(doc) == []
    tree = doc["product_tree"]
    models = [b["name"] for b in tree["branches"][0]["branches"]]
    assert models == ["pump", "pump-xl"]
    assert [b["name"] for b in tree["branches"][0]["branches"][0]["branches"]] == ["1.0.0", "1.1.0"]
    vulns = {v["cve"]: v for v in doc["vulnerabilities"]}
    fixed = vulns["CVE-2024-28755"]  # Mbed TLS 3.5.1 only: fixed by release 1.1.0
    assert fixed["product_status"]["fixed"] == ["FW-1-2", "FW-2-2"]
    assert fixed["product_status"]["under_investigation"]  # no decision yet
    assert any(r["category"] == "vendor_fix" and "1.1.0" in r["details"] for r in fixed["remediations"])
    expat = vulns["CVE-2024-8176"]  # decided not affected, still present in 1.1.0
    assert "known_not_affected" in expat["product_status"] and "fixed" not in expat["product_status"]
    assert expat["flags"][0]["label"] == "vulnerable_code_not_in_execute_path"
    affected = vulns["CVE-2025-27810"]
    assert "known_affected" in affected["product_status"]
    assert any(s.get("cvss_v3") for s in affected.get("scores", [])) or "scores" not in affected
    helper = tree["full_product_names"][0]["product_identification_helper"]
    assert "x_generic_uris" in helper and ("purl" in helper or "cpe" in helper)


def test_vex_profile_without_a_fix(full_index: VulnIndex) -> None:
    register_release(full_index, release_sbom("3.5.1", fw_version="1.0.0"), sink=MemorySink())
    doc = build_advisory(full_index, "1", publisher="Example Medical", namespace="https://example-medical.invalid")
    assert doc["document"]["category"] == "csaf_vex"
    check_csaf(doc)


def test_independent_validator_accepts_both_profiles(
    full_index: VulnIndex, bsi_validator: Path, tmp_path: Path
) -> None:
    _two_releases(full_index)
    docs = [
        build_advisory(full_index, ref, publisher="Example Medical", namespace="https://example-medical.invalid")
        for ref in ("1", "2")
    ]
    assert [d["document"]["category"] for d in docs] == ["csaf_security_advisory", "csaf_vex"]
    # and it does catch what the bundled checks catch: an undefined product id (6.1.1)
    broken = copy.deepcopy(docs[1])
    broken["vulnerabilities"][0]["product_status"]["under_investigation"] = ["NOPE-1"]
    good1, good2, bad = bsi_validate(bsi_validator, [*docs, broken], tmp_path)
    for result in (good1, good2):
        assert result["isValid"] and result["failed"] == [] and result["tests"] > 30, result
    assert not bad["isValid"]
    assert any("6.1.1" in p for p in mandatory_problems(broken))


def test_bad_csaf_documents_are_refused(full_index: VulnIndex) -> None:
    register_release(full_index, release_sbom("3.5.1", fw_version="1.0.0"), sink=MemorySink())
    doc = build_advisory(full_index, "1", publisher="Example Medical", namespace="https://example-medical.invalid")
    bad = copy.deepcopy(doc)
    del bad["document"]["publisher"]
    with pytest.raises(InputError, match=r"CSAF 2\.0 schema"):
        check_csaf(bad)
    bad = copy.deepcopy(doc)
    v = bad["vulnerabilities"][0]
    v["product_status"]["known_affected"] = list(v["product_status"]["under_investigation"])
    with pytest.raises(InputError, match=r"6\.1\.6"):
        check_csaf(bad)
    with pytest.raises(InputError, match="not a registered release"):
        build_advisory(full_index, "7", publisher="x", namespace="https://x.invalid")


def test_signature_and_cli(full_index: VulnIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_releases(full_index)
    key = generate_private_key(KeyType.ED25519)
    doc = build_advisory(full_index, "1", publisher="Example Medical", namespace="https://example-medical.invalid")
    sig = sign_advisory(doc, FileSigner(key))
    data = json.dumps(doc, indent=1).encode()  # any serialization: the canonical form is signed
    verify_advisory(data, sig, key.public_key())
    tampered = copy.deepcopy(doc)
    tampered["document"]["title"] = "nothing to see"
    with pytest.raises(VerificationError):
        verify_advisory(json.dumps(tampered).encode(), sig, key.public_key())

    key_file = tmp_path / "advisory.pem"
    write_private_key(key, key_file)
    pub = tmp_path / "advisory.pub.pem"
    from cryptography.hazmat.primitives import serialization

    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    out = tmp_path / "adv.json"
    sbom = tmp_path / "r1.cdx.json"
    sbom.write_bytes(release_sbom("3.5.1", fw_version="1.0.0"))
    argv = ["vuln", "advisory", "export", str(sbom), "--format", "csaf", "--out", str(out), "--key", str(key_file)]
    assert main([*argv, "--db", full_index.url, "--publisher", "Example Medical", "--json"]) == 0
    capsys.readouterr()
    assert out.with_name("adv.json.sig").is_file() and out.with_name("adv.json.sha256").is_file()
    assert main(["vuln", "advisory", "verify", str(out), "--key", str(pub)]) == 0
    out.write_text(out.read_text().replace("Example Medical", "Evil Medical"))
    assert main(["vuln", "advisory", "verify", str(out), "--key", str(pub)]) == 1
    missing = tmp_path / "unregistered.cdx.json"
    missing.write_bytes(release_sbom("3.6.0", serial="urn:uuid:0e6f7c62-7f0b-4b54-9a55-360000000000"))
    assert (
        main(["vuln", "advisory", "export", str(missing), "--out", str(tmp_path / "x.json"), "--db", full_index.url])
        == 2
    )
    assert not (tmp_path / "x.json").exists()
