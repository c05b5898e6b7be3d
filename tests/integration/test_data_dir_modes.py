"""The data directory is the service user's alone: directories 0700, every file holding a
secret or personal data 0600 (secrets.json, the key ring, the CA key, the SQLite database and
its -wal and -shm files), whether Certcloud creates them or finds them looser."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from app.bootstrap import init_ca
from app.clock import SystemClock
from app.main import create_app
from app.settings import Settings
from app.storage import migrate
from app.storage.files import private_directory, private_file
from tests.support.app import FixedClock, make_settings
from tests.support.bank import make_bank


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> object:
    """The umask most hosts and images run with: it leaves new files 0644, directories 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def _serve_and_write(settings: Settings) -> dict[str, int]:
    """Start the app on its SQLite file, write rows through the API, and read the modes of
    everything in the data directory while the database is open (-wal and -shm exist)."""
    app = create_app(settings, clock=FixedClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test") as http:
            bank = await make_bank(http, app.state.container)
            started = await bank.post("/v1/verifications",
                                      {"phone": "+821055550077", "channel": "sms"})
            assert started.status_code == 201, started.text
            data = settings.data_dir
            assert (data / "certcloud.db-wal").exists() and (data / "certcloud.db-shm").exists()
            return {str(path.relative_to(data)): mode(path)
                    for path in [data, *sorted(data.rglob("*"))]}


async def test_development_creates_the_data_directory_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "fresh" / "var", None)  # the default SQLite file
    modes = await _serve_and_write(settings)
    expected = {".": 0o700, "ca": 0o700, "ca/ca.key.pem": 0o600, "secrets.json": 0o600,
                "keyring.json": 0o600, "certcloud.db": 0o600, "certcloud.db-wal": 0o600,
                "certcloud.db-shm": 0o600}
    assert {name: modes.get(name) for name in expected} == expected
    assert mode(tmp_path / "fresh") == 0o700  # a missing parent is made private too
    loose = {name: oct(value) for name, value in modes.items() if value & 0o077
             and name != "ca/ca.cert.pem"}  # the CA certificate is public, in a 0700 directory
    assert not loose, loose


async def test_a_looser_data_directory_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "certcloud.db").touch()
    os.chmod(data / "certcloud.db", 0o644)  # as a release before this one left them
    modes = await _serve_and_write(make_settings(data, None))
    assert modes["."] == 0o700
    assert modes["certcloud.db"] == modes["certcloud.db-wal"] == modes["certcloud.db-shm"] \
        == 0o600


def test_production_ca_init_and_db_upgrade_make_private_files(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "prod", None, environment="production")
    init_ca(settings, SystemClock())
    migrate.upgrade(settings.resolved_database_url)
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.ca_dir) == 0o700
    assert mode(settings.ca_dir / "ca.key.pem") == 0o600
    assert mode(settings.data_dir / "certcloud.db") == 0o600


def test_private_directory_and_file(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    private_directory(nested)
    assert mode(tmp_path / "a") == mode(nested) == 0o700
    os.chmod(nested, 0o775)
    private_directory(nested)  # an existing one is tightened, not replaced
    assert mode(nested) == 0o700
    database = nested / "x.db"
    private_file(database)
    assert mode(database) == 0o600 and database.read_bytes() == b""
    database.write_bytes(b"kept")
    os.chmod(database, 0o664)
    private_file(database)
    assert mode(database) == 0o600 and database.read_bytes() == b"kept"
