"""The CA key inside a PKCS#11 token: made by ``certcloud ca init``, found at start-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.errors import DependencyUnavailable
from app.pki.ca import (
    CertificateAuthority,
    load_ca_certificate,
    load_chain,
    save_ca_certificate,
    self_sign_ca,
)
from app.pki.token_keys import (
    KeyNotOnToken,
    TokenPrivateKey,
    generate_token_key,
    load_token_key,
)
from app.settings import Settings
from app.storage.pkcs11 import (
    TokenError,
    token_session,
)


def generate_token_ca_key(settings: Settings, *, algorithm: str | None = None
                          ) -> tuple[TokenPrivateKey, dict[str, str]]:
    """A new CA key inside the token (non-extractable) and where it is (token and label).

    :raises TokenError: the token cannot be used, or a key with the label exists.
    """
    token = token_session(settings.keys)
    token.open()
    label = settings.ca.key_label
    try:
        key = generate_token_key(token, label, algorithm or settings.ca.key_algorithm)
    except ValueError as exc:
        raise TokenError(f"{exc} (token {token.token_label!r})", retryable=False) from None
    except DependencyUnavailable:
        raise TokenError(f"the PKCS#11 token {token.token_label!r} failed while the CA key was "
                         f"generated ({token.last_error})") from None
    return key, {"store": "pkcs11", "token_label": token.token_label, "key_label": label}


def init_token_ca(settings: Settings, now: datetime, *, algorithm: str | None = None
                  ) -> CertificateAuthority:
    """``certcloud ca init --pkcs11``: the CA key generated inside the token (non-extractable),
    the self-signed certificate and the key's whereabouts written to the CA directory.

    :raises TokenError: the token cannot be used, or a key with the label exists.
    :raises FileExistsError: a CA exists already.
    """
    key, reference = generate_token_ca_key(settings, algorithm=algorithm)
    certificate = self_sign_ca(key, common_name=settings.ca.common_name,
                               organization=settings.ca.organization,
                               country=settings.ca.country, now=now,
                               validity_years=settings.ca.validity_years)
    save_ca_certificate(certificate, settings.ca_dir, reference)
    return CertificateAuthority(key, certificate)


def load_token_ca(settings: Settings, reference: dict[str, str]) -> CertificateAuthority:
    """The CA certificate (and chain) from the CA directory with its key in the token.

    :raises TokenError: one line naming the problem (token, PIN, missing or wrong key).
    """
    certificate = load_ca_certificate(settings.ca_dir)
    key = load_token_ca_key(settings, reference, certificate.public_key())
    return CertificateAuthority(key, certificate, load_chain(settings.ca_dir))


def load_token_ca_key(settings: Settings, reference: dict[str, str], public_key: Any
                      ) -> TokenPrivateKey:
    """The token's CA key whose public half is ``public_key``, proved by a test signature.

    :raises TokenError: one line naming the problem (token, PIN, missing or wrong key).
    """
    token_label = reference.get("token_label", settings.keys.token_label)
    if token_label != settings.keys.token_label:
        raise TokenError(f"the CA key is on the PKCS#11 token {token_label!r}, but "
                         f"CERTCLOUD_KEYS__TOKEN_LABEL is {settings.keys.token_label!r}",
                         retryable=False)
    label = reference.get("key_label", settings.ca.key_label)
    token = token_session(settings.keys)
    token.open()
    try:
        return load_token_key(token, label, public_key)
    except KeyNotOnToken:
        raise TokenError(f"no CA key labelled {label!r} on the PKCS#11 token "
                         f"{token.token_label!r}", retryable=False) from None
    except ValueError as exc:
        raise TokenError(str(exc), retryable=False) from None
    except DependencyUnavailable:
        raise TokenError(f"the PKCS#11 token {token.token_label!r} failed while the CA key was "
                         f"checked ({token.last_error})") from None
