"""The README's sandbox walk-through, run as written against a real `certcloud serve`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.processes import CERTCLOUD, env_for, serving

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## A walk through the whole flow (sandbox)"


def walkthrough_script() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)
    assert blocks, "the walk-through section has no sh block"
    return "\n".join(blocks)


def test_walkthrough_section_has_the_signing_and_lock_steps() -> None:
    script = walkthrough_script()
    assert "openssl dgst -sha256 -verify pub.pem" in script
    assert "openssl cms -verify -inform DER" in script
    assert "/unlock" in script and '"format\\": \\"cms\\"' in script


def test_readme_walkthrough_runs_top_to_bottom(tmp_path: Path,
                                                fresh_database_url: str) -> None:
    with serving(tmp_path / "var", fresh_database_url) as api:
        env = env_for(tmp_path / "var", fresh_database_url, CERTCLOUD_PUBLIC_BASE_URL=api)
        shell_env = {**env, "API": api, "CERTCLOUD": CERTCLOUD,
                     "PATH": f"{Path(CERTCLOUD).parent}{os.pathsep}{env.get('PATH', '')}"}
        work = tmp_path / "work"
        work.mkdir()
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_script()],
                             cwd=work, env=shell_env, capture_output=True, text=True,
                             timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Verified OK" in output
    assert "CMS Verification successful" in output
    assert (work / "signed.txt").read_bytes() == (work / "data.txt").read_bytes()
    assert '"code":"pin_locked"' in run.stdout and " 423\n" in run.stdout
    assert '"remaining_attempts":0' in run.stdout
    problems = re.findall(r'"code":"([a-z_]+)"', run.stdout)
    assert problems == ["pin_invalid"] * 5 + ["pin_locked"], problems  # every other step worked
    assert '"revocation_reason":"key_compromise"' in run.stdout
    assert "Verification failure" not in output and "Internal Server Error" not in output
