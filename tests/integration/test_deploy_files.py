"""The deployment files: .env.example names every setting, compose.yaml is a valid Compose
file, the systemd unit parses and is hardened, and the image installs a wheel from the lock."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / ".env.example"
UNIT = ROOT / "deploy" / "certcloud.service"


def _setting_names(model: type[BaseModel] = Settings, prefix: str = "CERTCLOUD_"
                   ) -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _setting_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def _example_names() -> list[str]:
    return re.findall(r"^(?:# )?(CERTCLOUD_[A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE)


def test_the_env_example_names_every_setting_once() -> None:
    expected = sorted(_setting_names())
    assert len(expected) > 70  # the nested models were walked
    named = _example_names()
    assert sorted(set(named)) == sorted(named), "a setting is named twice"
    missing = sorted(set(expected) - set(named))
    unknown = sorted(set(named) - set(expected))
    assert not missing, f"deploy/.env.example lacks {missing}: run scripts/env_example.py"
    assert not unknown, f"deploy/.env.example names settings that do not exist: {unknown}"


def test_the_env_example_is_what_the_generator_writes() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import env_example  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert EXAMPLE.read_text() == env_example.render(), "run scripts/env_example.py"


def test_the_env_example_loads_as_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CERTCLOUD_"):
            monkeypatch.delenv(key)
    settings = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    assert settings.is_production and settings.verifier.kind == "provider"
    assert settings.limits.redis_url == "redis://127.0.0.1:6379/0"
    # Its secrets are empty: production refuses to start until they are filled in.
    assert settings.rrn_hmac_key is not None and settings.rrn_hmac_key.get_secret_value() == ""


def _compose() -> list[str]:
    """The docker compose plugin, else Debian's docker-compose (1.29, which scripts/test
    installs); neither needs a Docker engine for `config`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip("neither the docker compose plugin nor docker-compose is installed")


def test_compose_config_is_valid() -> None:
    command = _compose()
    env = {**os.environ, "CERTCLOUD_ENV_FILE": str(EXAMPLE), "POSTGRES_PASSWORD": "check"}
    checked = subprocess.run([*command, "-f", str(ROOT / "compose.yaml"), "config", "-q"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    rendered = subprocess.run([*command, "-f", str(ROOT / "compose.yaml"), "config",
                               "--services"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
    assert sorted(rendered.stdout.split()) == ["certcloud-1", "certcloud-2", "postgres",
                                               "proxy", "redis"]


def test_compose_without_the_database_password_is_refused() -> None:
    command = _compose()
    env = {key: value for key, value in os.environ.items() if key != "POSTGRES_PASSWORD"}
    checked = subprocess.run([*command, "-f", str(ROOT / "compose.yaml"), "config", "-q"],
                             cwd=ROOT, env={**env, "CERTCLOUD_ENV_FILE": str(EXAMPLE)},
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0 and "POSTGRES_PASSWORD" in checked.stderr


def _unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_systemd_unit_runs_unprivileged_and_hardened() -> None:
    unit = _unit()
    assert unit["User"] == ["certcloud"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"] and unit["ReadWritePaths"] == ["/var/lib/certcloud"]
    assert unit["EnvironmentFile"] == ["/etc/certcloud/certcloud.env"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["PrivateTmp"] == ["yes"]
    assert "CERTCLOUD_ENVIRONMENT=production" in unit["Environment"][0]
    assert unit["ExecStartPre"][0].endswith("certcloud db upgrade")


def test_the_systemd_unit_parses_and_scores_well(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify wants the binaries to exist: point them at this checkout's certcloud.
    certcloud = shutil.which("certcloud") or str(Path(sys.executable).parent / "certcloud")
    unit = tmp_path / "certcloud.service"
    unit.write_text(UNIT.read_text().replace("/opt/certcloud/bin/certcloud", certcloud))
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0 and str(unit) not in verified.stderr, verified.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert found, security.stdout + security.stderr
    assert float(found.group(1)) <= 2.0  # systemd's "OK" band: little left exposed


def _final_stage() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stage: list[tuple[str, str]] = []
    for line in text.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage = []
        if keyword and not keyword.startswith("#"):
            stage.append((keyword.upper(), rest.strip()))
    return stage


def test_the_image_installs_a_wheel_from_the_lock_as_non_root() -> None:
    stage = _final_stage()
    runs = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    assert "--require-hashes" in runs and "-r /tmp/requirements.lock" in runs
    assert ".whl" in runs and "pip install -e" not in runs and "pip check" in runs
    assert ("COPY", "--from=build /wheels /tmp/wheels") in stage
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("VOLUME", '["/var/lib/certcloud"]') in stage
    last_user = max(i for i, (keyword, _rest) in enumerate(stage) if keyword == "USER")
    cmd = max(i for i, (keyword, _rest) in enumerate(stage) if keyword == "CMD")
    assert last_user < cmd  # the command runs as that user
