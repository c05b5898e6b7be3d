"""`certcloud ca init --csr` and `ca import` as an operator runs them (real `certcloud` processes,
real `openssl`): the issuing CA's key and CSR, the bank's offline root signing it, the import
and each refusal (one line, exit 1), and `serve` refusing a pending CA."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.offline_root import Root, ca_usage, make_root, name, pem
from tests.support.processes import CERTCLOUD, certcloud, env_for, free_port

NOW = datetime.now(UTC)


def _openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60,
                          check=False)


def _one_line_refusal(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _values(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return env_for(tmp_path / "var", f"sqlite+aiosqlite:///{tmp_path / 'ca.db'}",
                   CERTCLOUD_CA__COMMON_NAME="Test Bank Issuing CA",
                   CERTCLOUD_CA__ORGANIZATION="Test Bank", **extra)


def test_ca_init_prints_what_it_made_and_the_fingerprint(tmp_path: Path) -> None:
    done = certcloud("ca", "init", env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    printed = _values(done.stdout)
    ca_dir = tmp_path / "var" / "ca"
    assert printed["CA key"] == str(ca_dir / "ca.key.pem")
    assert printed["CA certificate"].startswith(str(ca_dir / "ca.cert.pem"))
    fingerprint = _openssl("x509", "-noout", "-fingerprint", "-sha256", "-in",
                           str(ca_dir / "ca.cert.pem")).stdout.decode()
    printed_fingerprint = printed["CA certificate SHA-256 fingerprint"]
    assert fingerprint.strip() == f"sha256 Fingerprint={printed_fingerprint}"
    assert not (ca_dir / "chain.pem").exists()  # self-signed: nothing above it


def _spki_fingerprint(csr_path: Path) -> str:
    public_pem = _openssl("req", "-in", str(csr_path), "-pubkey", "-noout").stdout
    der = _openssl("pkey", "-pubin", "-outform", "DER", data=public_pem).stdout
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def _init_csr(tmp_path: Path, env: dict[str, str], *extra: str) -> tuple[Path, dict[str, str]]:
    csr_path = tmp_path / "issuing.csr"
    done = certcloud("ca", "init", "--csr", str(csr_path), *extra, env=env)
    assert done.returncode == 0, done.stderr
    return csr_path, _values(done.stdout)


def test_csr_then_the_roots_certificate_installs_the_ca(tmp_path: Path) -> None:
    env = _env(tmp_path)
    csr_path, printed = _init_csr(tmp_path, env)
    ca_dir = tmp_path / "var" / "ca"
    assert printed["CA key"] == str(ca_dir / "ca.key.pem")
    assert printed["CSR"] == str(csr_path)
    assert printed["CSR public key SHA-256 fingerprint"] == _spki_fingerprint(csr_path)
    assert _openssl("req", "-verify", "-noout", "-in", str(csr_path)).returncode == 0
    text = _openssl("req", "-noout", "-text", "-in", str(csr_path)).stdout.decode()
    assert "CA:TRUE, pathlen:0" in text and "Certificate Sign, CRL Sign" in text
    assert "CN = Test Bank Issuing CA" in text

    # pending: development's serve refuses instead of making a self-signed CA of its own
    served = subprocess.run([CERTCLOUD, "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60)
    line = _one_line_refusal(served)
    assert "pending" in line and "certcloud ca import" in line
    assert not (ca_dir / "ca.cert.pem").exists()
    again = _one_line_refusal(certcloud("ca", "init", env=env))
    assert "pending" in again

    root = make_root(tmp_path / "root", NOW)
    issued = root.sign_csr_with_openssl(csr_path, tmp_path / "issuing.pem")
    done = certcloud("ca", "import", str(issued), "--chain", str(root.pem_path), env=env)
    assert done.returncode == 0, done.stderr
    printed = _values(done.stdout)
    installed = x509.load_pem_x509_certificate((ca_dir / "ca.cert.pem").read_bytes())
    assert installed == x509.load_pem_x509_certificate(issued.read_bytes())
    fingerprint = _openssl("x509", "-noout", "-fingerprint", "-sha256", "-in",
                           str(issued)).stdout.decode().strip().split("=", 1)[1]
    assert printed["CA certificate SHA-256 fingerprint"] == fingerprint
    assert (ca_dir / "chain.pem").read_bytes() == root.pem_path.read_bytes()
    assert "1 certificate(s)" in printed["chain"]
    assert "already installed" in _one_line_refusal(
        certcloud("ca", "import", str(issued), "--chain", str(root.pem_path), env=env))


@pytest.fixture(scope="module")
def pending(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One pending CA for every refusal (a refusal changes nothing), and a root."""
    base = tmp_path_factory.mktemp("pending")
    env = _env(base)
    csr_path, _printed = _init_csr(base, env)
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    return {"base": base, "env": env, "csr": csr, "root": make_root(base / "root", NOW)}


def _write(path: Path, *certificates: x509.Certificate) -> str:
    path.write_bytes(pem(*certificates))
    return str(path)


def _issuing(root: Root, csr: x509.CertificateSigningRequest, **options: Any
             ) -> x509.Certificate:
    return root.sign(csr.public_key(), csr.subject, now=NOW, **options)


def _other_key(p: dict[str, Any], base: Path) -> list[str]:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = p["root"].sign(other, p["csr"].subject, now=NOW)
    return [_write(base / "cert.pem", cert), "--chain", str(p["root"].pem_path)]


def _not_ca(p: dict[str, Any], base: Path) -> list[str]:
    cert = _issuing(p["root"], p["csr"], ca=False)
    return [_write(base / "cert.pem", cert), "--chain", str(p["root"].pem_path)]


def _no_crl_sign(p: dict[str, Any], base: Path) -> list[str]:
    cert = _issuing(p["root"], p["csr"], usage=ca_usage(crl_sign=False))
    return [_write(base / "cert.pem", cert), "--chain", str(p["root"].pem_path)]


def _no_ski(p: dict[str, Any], base: Path) -> list[str]:
    cert = _issuing(p["root"], p["csr"], ski=False)
    return [_write(base / "cert.pem", cert), "--chain", str(p["root"].pem_path)]


def _impostor_root(p: dict[str, Any], base: Path) -> list[str]:
    """A root with the same name but another key: the signature does not verify."""
    impostor = make_root(base / "impostor", NOW)
    cert = _issuing(p["root"], p["csr"])
    return [_write(base / "cert.pem", cert), "--chain", str(impostor.pem_path)]


def _no_chain(p: dict[str, Any], base: Path) -> list[str]:
    return [_write(base / "cert.pem", _issuing(p["root"], p["csr"]))]


def _expired_root(p: dict[str, Any], base: Path) -> list[str]:
    old = make_root(base / "old", NOW, not_before=NOW - timedelta(days=400),
                    not_after=NOW - timedelta(days=1))
    return [_write(base / "cert.pem", _issuing(old, p["csr"])), "--chain", str(old.pem_path)]


def _root_without_path_room(p: dict[str, Any], base: Path) -> list[str]:
    tight = make_root(base / "tight", NOW, path_length=0)
    return [_write(base / "cert.pem", _issuing(tight, p["csr"])), "--chain",
            str(tight.pem_path)]


def _stray_certificate(p: dict[str, Any], base: Path) -> list[str]:
    stray = make_root(base / "stray", NOW, common_name="Somebody Else's Root")
    return [_write(base / "cert.pem", _issuing(p["root"], p["csr"])), "--chain",
            _write(base / "chain.pem", p["root"].certificate, stray.certificate)]


def _garbage(p: dict[str, Any], base: Path) -> list[str]:
    (base / "cert.pem").write_text("not a certificate\n")
    return [str(base / "cert.pem"), "--chain", str(p["root"].pem_path)]


@pytest.mark.parametrize(("make", "expected"), [
    (_other_key, "for another key than the pending CA's"),
    (_not_ca, "not a CA certificate"),
    (_no_crl_sign, "keyCertSign and cRLSign"),
    (_no_ski, "no subjectKeyIdentifier"),
    (_impostor_root, "does not verify with the key of"),
    (_no_chain, "the chain has no issuer of"),
    (_expired_root, "is not valid now"),
    (_root_without_path_room, "allows pathLen 0"),
    (_stray_certificate, "not on the path"),
    (_garbage, "not a certificate in PEM or DER"),
], ids=lambda value: getattr(value, "__name__", "")[1:] if callable(value) else "")
def test_import_refuses_with_one_line(pending: dict[str, Any], tmp_path: Path,
                                      make: Callable[[dict[str, Any], Path], list[str]],
                                      expected: str) -> None:
    line = _one_line_refusal(certcloud("ca", "import", *make(pending, tmp_path),
                                       env=pending["env"]))
    assert expected in line, line
    assert line.startswith("certcloud: not imported") or "PEM or DER" in line
    ca_dir = pending["base"] / "var" / "ca"
    assert not (ca_dir / "ca.cert.pem").exists() and not (ca_dir / "chain.pem").exists()


def test_import_without_a_pending_ca_is_refused(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", NOW)
    cert = root.sign(ec.generate_private_key(ec.SECP256R1()).public_key(),
                     name("Issuing"), now=NOW)
    line = _one_line_refusal(certcloud("ca", "import", _write(tmp_path / "c.pem", cert),
                                       "--chain", str(root.pem_path), env=_env(tmp_path)))
    assert "no pending CA" in line and "ca init --csr" in line


def test_a_self_signed_ca_has_nothing_to_import(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert certcloud("ca", "init", env=env).returncode == 0
    ca_pem = tmp_path / "var" / "ca" / "ca.cert.pem"
    line = _one_line_refusal(certcloud("ca", "import", str(ca_pem), env=env))
    assert "already installed" in line


def test_token_ca_init_csr_and_import(tmp_path: Path, softhsm: Any) -> None:
    """`ca init --pkcs11 --csr`: the key stays in the token; the import proves the token's
    key is the certificate's (a test signature), and the CA then issues under the root."""
    from app.bootstrap import load_issuing_ca
    from app.pki.ca import Profile, issue_end_entity, subject_for
    from app.settings import Settings

    label = softhsm.new_token()
    env = _env(tmp_path, **softhsm.env(label), CERTCLOUD_CA__KEY_ALGORITHM="p256")
    csr_path, printed = _init_csr(tmp_path, env, "--pkcs11")
    assert printed["CA key"] == f"PKCS#11 token {label!r}, key label 'certcloud-ca'"
    assert printed["CSR public key SHA-256 fingerprint"] == _spki_fingerprint(csr_path)
    assert not (tmp_path / "var" / "ca" / "ca.key.pem").exists()
    assert _openssl("req", "-verify", "-noout", "-in", str(csr_path)).returncode == 0

    root = make_root(tmp_path / "root", NOW)
    issued = root.sign_csr_with_openssl(csr_path, tmp_path / "issuing.pem")
    done = certcloud("ca", "import", str(issued), "--chain", str(root.pem_path), env=env)
    assert done.returncode == 0, done.stderr

    settings = Settings(data_dir=tmp_path / "var", keys=softhsm.keys_settings(label),
                        ca={"key_store": "pkcs11"})
    ca = load_issuing_ca(settings)
    assert ca.chain == (root.certificate,)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_end_entity(ca, Profile("1.3.6.1.4.1.99999.1", "http://certcloud.test"),
                            public_key=leaf_key.public_key(),
                            subject=subject_for("홍길동", "p-1"), serial=7,
                            not_before=NOW - timedelta(minutes=1),
                            not_after=NOW + timedelta(days=30))
    leaf_path = tmp_path / "leaf.pem"
    leaf_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    chain_path = tmp_path / "chain.pem"
    chain_path.write_bytes(ca.chain_pem)
    verified = _openssl("verify", "-CAfile", str(root.pem_path), "-untrusted",
                        str(chain_path), str(leaf_path))
    assert verified.returncode == 0 and b": OK" in verified.stdout, verified.stderr


def test_ca_init_csr_refuses_a_place_it_cannot_write(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (tmp_path / "taken.csr").write_text("someone's file\n")
    line = _one_line_refusal(certcloud("ca", "init", "--csr", str(tmp_path / "taken.csr"),
                                       env=env))
    assert "never written over" in line
    line = _one_line_refusal(certcloud("ca", "init", "--csr",
                                       str(tmp_path / "missing" / "x.csr"), env=env))
    assert "not a directory" in line
    assert not (tmp_path / "var" / "ca").exists()  # nothing made: it can simply run again
