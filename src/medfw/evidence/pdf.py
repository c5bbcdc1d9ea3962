"""The PDF copy of the report, printed by headless Chromium (``--print-to-pdf``) from the bundled HTML.

Chromium is looked up as ``$MEDFW_CHROMIUM``, then ``chromium``, ``chromium-browser``, ``google-chrome`` on
``PATH``. It runs with a throw-away profile, no network services and the report's own Content-Security-Policy
(no scripts, no fetches), and must write a file that starts with ``%PDF-``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from medfw.errors import EvidenceError

__all__ = ["find_chromium", "print_pdf"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
_TIMEOUT = 120


def find_chromium() -> str | None:
    """The Chromium executable to print with, or ``None``."""
    env = os.environ.get("MEDFW_CHROMIUM")
    if env:
        return env
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_file: Path, pdf_file: Path) -> None:
    """Print ``html_file`` to ``pdf_file`` (A4/Letter per Chromium's default, backgrounds on, no header/footer).

    Raises:
        EvidenceError: no Chromium, it failed or timed out, or it wrote no PDF.
    """
    chromium = find_chromium()
    if chromium is None:
        raise EvidenceError(
            "no Chromium to print the report PDF with (install chromium or set MEDFW_CHROMIUM)", path=str(pdf_file)
        )
    with tempfile.TemporaryDirectory(prefix="medfw-pdf-") as profile:
        argv = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf_file}",
            html_file.resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EvidenceError(f"Chromium could not print the report: {e}", path=str(pdf_file)) from None
    if proc.returncode != 0 or not pdf_file.is_file() or pdf_file.read_bytes()[:5] != b"%PDF-":
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise EvidenceError(f"Chromium exited {proc.returncode} without a PDF: {' | '.join(tail)}", path=str(pdf_file))
