"""Start-up's warnings and `serve --port`'s default public base URL, in process (the processes
an operator runs are in tests/integration/test_serve_startup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.serve import _with_port
from app.settings import Settings
from app.startup import is_loopback_host, startup_warnings


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8443",
                                 "https://[::1]/", "http://127.8.0.1"])
def test_a_loopback_public_url_is_warned_about_in_production(tmp_path: Path, url: str) -> None:
    settings = Settings(data_dir=tmp_path, environment="production", public_base_url=url)
    [warning] = startup_warnings(settings)
    assert "is a loopback address" in warning and "CERTCLOUD_PUBLIC_BASE_URL" in warning


@pytest.mark.parametrize("url", ["https://certs.bank.example", "http://10.0.0.5:8000",
                                 "https://localhost.bank.example"])
def test_a_reachable_public_url_is_not(tmp_path: Path, url: str) -> None:
    settings = Settings(data_dir=tmp_path, environment="production", public_base_url=url)
    assert startup_warnings(settings) == []


def test_development_on_loopback_is_not_warned_about(tmp_path: Path) -> None:
    assert startup_warnings(Settings(data_dir=tmp_path)) == []


def test_loopback_hosts() -> None:
    assert [is_loopback_host(h) for h in ("localhost", "LOCALHOST", "127.0.0.2", "::1",
                                          "[::1]")] == [True] * 5
    assert [is_loopback_host(h) for h in ("0.0.0.0", "::", "certcloud.example", "")] == \
        [False] * 4


def test_the_port_moves_the_default_public_base_url(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCLOUD_PUBLIC_BASE_URL", "")  # so that monkeypatch restores it
    monkeypatch.delenv("CERTCLOUD_PUBLIC_BASE_URL")
    moved = _with_port(Settings(data_dir=tmp_path), 9443)
    assert moved.public_base_url == "http://127.0.0.1:9443"
    assert Settings(data_dir=tmp_path).public_base_url == "http://127.0.0.1:9443"  # workers


def test_an_explicit_public_base_url_stays(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCLOUD_PUBLIC_BASE_URL", "https://certs.bank.example")
    kept = _with_port(Settings(data_dir=tmp_path), 9443)
    assert kept.public_base_url == "https://certs.bank.example"
