"""Issue 11, finding 8: production refuses weak settings at start, each in the one line that
names every problem found (the same checks `certcloud serve` runs first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import check_configuration
from app.services.secrets import StartupError, secret_bits
from app.settings import Settings
from tests.production_config import SECRETS, production_fields, strong_secret


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in changes.items():
        both = isinstance(value, dict) and isinstance(base.get(name), dict)
        out[name] = _merged(base[name], value) if both else value
    return out


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(data_dir=tmp_path, **_merged(production_fields(), changes))


def _refusal(settings: Settings) -> str:
    with pytest.raises(StartupError) as refused:
        check_configuration(settings)
    message = str(refused.value)
    assert message and "\n" not in message
    return message


def test_a_good_production_configuration_passes(tmp_path: Path) -> None:
    secrets_ = check_configuration(_settings(tmp_path))
    assert secrets_.audit_hmac_key == SECRETS["audit_hmac_key"].encode()
    assert secrets_.pin_pattern_key == SECRETS["pin_pattern_key"].encode()
    assert not list(tmp_path.iterdir())  # production writes nothing
    # RFC 9106's first option (t=1, 2 GiB) is as good as the second.
    check_configuration(_settings(tmp_path, argon2={"time_cost": 1,
                                                    "memory_kib": 2 * 1024 * 1024}))
    hex_secret = "0123456789abcdef" * 4  # 64 hex characters: 256 bits
    check_configuration(_settings(tmp_path, pin_pattern_key=hex_secret))


def test_one_value_for_every_secret_is_refused(tmp_path: Path) -> None:
    same = strong_secret("shared")
    line = _refusal(_settings(tmp_path, rrn_hmac_key=same, code_hmac_key=same,
                              audit_hmac_key=same, pin_pattern_key=same,
                              token_signing_keys=f"k1:{same}"))
    assert "CERTCLOUD_CODE_HMAC_KEY has the same value as CERTCLOUD_RRN_HMAC_KEY" in line
    assert "CERTCLOUD_TOKEN_SIGNING_KEYS key 'k1' has the same value" in line
    assert same not in line


@pytest.mark.parametrize("weak", ["x" * 40, "abcdefgh" * 5, "0123456789abcdef" * 3,
                                  strong_secret("w")[:42]])
def test_a_secret_under_256_bits_is_refused(tmp_path: Path, weak: str) -> None:
    assert secret_bits(weak) < 256
    line = _refusal(_settings(tmp_path, code_hmac_key=weak))
    assert "CERTCLOUD_CODE_HMAC_KEY holds less than 256 bits" in line
    assert weak not in line


def test_the_new_secrets_are_required(tmp_path: Path) -> None:
    line = _refusal(_settings(tmp_path, audit_hmac_key=None, pin_pattern_key=None))
    assert "CERTCLOUD_AUDIT_HMAC_KEY is not set" in line
    assert "CERTCLOUD_PIN_PATTERN_KEY is not set" in line


@pytest.mark.parametrize("argon2", [{"time_cost": 1, "memory_kib": 8},
                                    {"time_cost": 2, "memory_kib": 65536},
                                    {"time_cost": 3, "memory_kib": 65535},
                                    {"time_cost": 1, "memory_kib": 1024 * 1024}])
def test_a_kdf_below_rfc_9106_is_refused(tmp_path: Path, argon2: dict[str, int]) -> None:
    line = _refusal(_settings(tmp_path, argon2=argon2))
    assert f"Argon2id t={argon2['time_cost']}, m={argon2['memory_kib']} KiB is below" in line


def test_empty_provider_credentials_are_refused(tmp_path: Path) -> None:
    line = _refusal(_settings(tmp_path, verifier={"sens": {"access_key": "", "secret_key": ""},
                                                  "twilio": {"auth_token": " "}}))
    assert "the provider verifier needs credentials" in line
    for name in ("SENS__ACCESS_KEY", "SENS__SECRET_KEY", "TWILIO__AUTH_TOKEN"):
        assert f"CERTCLOUD_VERIFIER__{name}" in line
    assert "SENS__SERVICE_ID" not in line


def test_every_problem_is_named_in_one_line(tmp_path: Path) -> None:
    same = strong_secret("shared")
    line = _refusal(_settings(tmp_path, rrn_hmac_key=same, code_hmac_key=same,
                              argon2={"time_cost": 1, "memory_kib": 8},
                              verifier={"twilio": {"account_sid": ""}}))
    assert "Argon2id" in line and "same value" in line
    assert "CERTCLOUD_VERIFIER__TWILIO__ACCOUNT_SID" in line
    assert line.count("; ") >= 2


def test_development_keeps_its_cheap_settings(tmp_path: Path) -> None:
    check_configuration(Settings(data_dir=tmp_path, argon2={"time_cost": 1, "memory_kib": 8}))


def test_development_secrets_of_an_older_data_directory_are_kept(tmp_path: Path) -> None:
    import json

    from app.services.secrets import load_secrets

    old = {"rrn_hmac_key": strong_secret("old rrn"), "code_hmac_key": strong_secret("old code"),
           "token_signing_keys": f"dev-1:{strong_secret('old token')}"}
    (tmp_path / "secrets.json").write_text(json.dumps(old))
    first = load_secrets(Settings(data_dir=tmp_path))
    assert first.rrn_hmac_key == old["rrn_hmac_key"].encode()
    assert json.loads((tmp_path / "secrets.json").read_text()) == old
    added = json.loads((tmp_path / "secrets-v2.json").read_text())
    assert set(added) == {"audit_hmac_key", "pin_pattern_key"}
    again = load_secrets(Settings(data_dir=tmp_path / "."))
    assert again.audit_hmac_key == first.audit_hmac_key == added["audit_hmac_key"].encode()
    fresh = tmp_path / "fresh"
    load_secrets(Settings(data_dir=fresh))
    assert set(json.loads((fresh / "secrets.json").read_text())) == {
        "rrn_hmac_key", "code_hmac_key", "token_signing_keys", "audit_hmac_key",
        "pin_pattern_key"}
    assert not (fresh / "secrets-v2.json").exists()
