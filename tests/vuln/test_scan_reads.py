"""The scan's reads on the driver's cursor, findings made without the frozen ``__init__``, the import workers'
CPU priority, and what a JSON scan loads."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from medfw.errors import StorageError
from medfw.vuln import import_feeds, open_index, scan
from medfw.vuln.dbio import driver_rows, driver_rows_in
from medfw.vuln.import_prep import _yield_to_writer
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Finding
from medfw.vuln.triage import choose_severity

CURL = {"bom-ref": "curl", "name": "curl", "version": "8.4.0", "cpe": "cpe:2.3:a:haxx:curl:8.4.0:*:*:*:*:*:*:*"}


def test_driver_rows_in_chunks_and_plain_tuples(full_index: VulnIndex) -> None:
    with full_index.transaction() as conn:
        ids = [r[0] for r in driver_rows(conn, [("SELECT vuln_id FROM vuln_record ORDER BY rid", ())])]
        got = driver_rows_in(conn, "SELECT vuln_id, source FROM vuln_record WHERE vuln_id", [*ids, *ids], n=7)
    assert ids and all(type(r) is tuple for r in got)
    assert sorted({r[0] for r in got}) == sorted(set(ids))
    assert len(got) == len(ids)  # each id asked for once, whatever the chunk size


def test_driver_errors_are_storage_errors(full_index: VulnIndex) -> None:
    with pytest.raises(StorageError, match="no such table"), full_index.transaction() as conn:
        driver_rows(conn, [("SELECT x FROM no_such_table", ())])


def test_scan_reads_match_the_stored_records(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    result = scan(full_index, sbom_factory([CURL]))
    ids = {f.vuln_id for f in result.findings}
    assert "CVE-2024-2398" in ids
    triage, configured = full_index.triage_and_configured(ids)
    full = full_index.records_for(ids)
    assert set(triage) == set(full)
    for vuln_id, recs in triage.items():
        assert sorted((r.source, r.record_id) for r in recs) == sorted((r.source, r.record_id) for r in full[vuln_id])
        assert configured.get(vuln_id, set()) <= {r.source for r in recs}
    kev = full_index.kev_for([*ids, "CVE-0000-0000"])
    assert "CVE-0000-0000" not in kev and all(isinstance(v, dict) for v in kev.values())
    assert all(isinstance(e, float) and isinstance(p, float) for e, p in full_index.epss_for(ids).values())


def test_finding_build_is_the_dataclass(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    result = scan(full_index, sbom_factory([CURL]))
    assert result.findings
    names = [f.name for f in dataclasses.fields(Finding)]
    for f in result.findings:
        fields = {n: getattr(f, n) for n in names}
        assert Finding.build(fields) == Finding(**fields) == f
    required = {n: fields[n] for n in names if n not in ("decision", "description", "aliases", "priority")}
    built = Finding.build(required)
    assert built == Finding(**required) and built.priority == 0 and built.aliases == ()
    assert [f.priority for f in result.findings] == list(range(1, len(result.findings) + 1))


def test_unscored_choice_names_the_sources() -> None:
    class Rec:
        def __init__(self, source: str) -> None:
            self.source, self.data = source, {}

    c = choose_severity([Rec("osv"), Rec("nvd"), Rec("nvd")])
    assert (c.severity, c.reason) == ("unscored", "no imported source scores it (records: nvd, osv)")
    assert choose_severity([]).reason == "no record of it is stored"


@pytest.mark.postgres
def test_postgres_scan_reads(vuln_vectors: Path, sbom_factory: Callable[..., bytes]) -> None:
    psycopg = pytest.importorskip("psycopg")
    pg = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"medfw_reads_{os.getpid()}"
    try:
        admin = psycopg.connect(pg, autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL not reachable: {e}")
    try:
        index = open_index(f"{pg}?schema={schema}")
        try:
            import_feeds(index, nvd=[str(vuln_vectors / "nvd/anchore-overrides")])
            with pytest.raises(StorageError), index.transaction() as conn:
                driver_rows(conn, [("SELECT x FROM no_such_table", ())])
            with index.transaction() as conn:
                got = driver_rows_in(conn, "SELECT vuln_id FROM vuln_record WHERE vuln_id", ["CVE-2024-2398"])
            assert got == [("CVE-2024-2398",)]
            result = scan(index, sbom_factory([CURL]))
            assert "CVE-2024-2398" in {f.vuln_id for f in result.findings}
        finally:
            index.close()
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def test_import_workers_yield_to_the_writer() -> None:
    mine = os.nice(0)
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, initializer=_yield_to_writer) as pool:
        theirs = pool.submit(os.nice, 0).result()
    assert theirs == min(mine + 5, 19)


def test_json_scan_does_not_load_rich(
    full_index_path: Path, tmp_path: Path, sbom_factory: Callable[..., bytes]
) -> None:
    sbom = tmp_path / "s.cdx.json"
    sbom.write_bytes(sbom_factory([CURL]))
    out = tmp_path / "r.json"
    code = (
        "import sys\nfrom medfw.cli import main\n"
        f"rc = main(['vuln', 'scan', {str(sbom)!r}, '--db', {str(full_index_path)!r}, "
        f"'--format', 'json', '--out', {str(out)!r}])\n"
        "print(rc, 'rich' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["0", "False"], done.stderr
    assert "CVE-2024-2398" in out.read_text()


@pytest.mark.parametrize(("fail_on", "code"), [(None, 0), ("low", 1)])
def test_scan_process_ends_with_its_exit_code(
    full_index_path: Path, tmp_path: Path, sbom_factory: Callable[..., bytes], fail_on: str | None, code: int
) -> None:
    """``vuln scan`` ends its process without the interpreter's teardown: the report is whole, the code kept."""
    sbom = tmp_path / "s.cdx.json"
    sbom.write_bytes(sbom_factory([CURL]))
    out = tmp_path / "r.json"
    argv = ["medfw", "vuln", "scan", str(sbom), "--db", str(full_index_path), "--format", "json", "--out", str(out)]
    argv += ["--fail-on", fail_on] if fail_on else []
    script = f"import sys\nsys.argv = {argv!r}\nfrom medfw.cli import run\nrun()"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == code, done.stderr
    assert "CVE-2024-2398" in {f["vuln_id"] for f in json.loads(out.read_text())["findings"]}
