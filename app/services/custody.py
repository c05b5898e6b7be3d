"""Two locks on every user key: the PIN layer inside, the server master key outside."""

from __future__ import annotations

from app.domain.errors import DependencyUnavailable
from app.domain.ports import KeyProtector
from app.pki.keys import (
    KdfParams,
    UserPrivateKey,
    open_with_pin,
    private_key_from_der,
    private_key_to_der,
    seal_with_pin,
)
from app.services.kdf_pool import KdfPool


def key_binding(certificate_id: str) -> bytes:
    """Associated data: a blob opens only for the certificate row it was made for."""
    return f"certcloud:user-key:{certificate_id}".encode()


def responder_binding(responder_id: str) -> bytes:
    """Associated data: an OCSP responder key opens only for its own ``ocsp_responders`` row."""
    return f"certcloud:ocsp-responder:{responder_id}".encode()


def tsa_binding(signer_id: str) -> bytes:
    """Associated data: a TSA key opens only for its own ``tsa_signers`` row."""
    return f"certcloud:tsa-signer:{signer_id}".encode()


class KeyCustody:
    """Owns the PIN KDF's thread pool (:class:`KdfPool`); :meth:`close` stops it."""

    def __init__(self, protector: KeyProtector, kdf: KdfParams,
                 pool: KdfPool | None = None) -> None:
        self.protector = protector
        self.kdf = kdf
        self.pool = pool or KdfPool()

    async def seal(self, key: UserPrivateKey, pin: str, certificate_id: str) -> tuple[str, bytes]:
        """Returns (master key id, blob). The Argon2id derivation runs on the KDF pool.

        :raises RateLimited: ``pin_kdf_busy``, too many derivations waiting.
        """
        binding = key_binding(certificate_id)
        inner = await self.pool.run(seal_with_pin, private_key_to_der(key), pin, self.kdf,
                                    binding)
        return await self.protector.wrap(inner, binding)

    async def open(self, certificate_id: str, master_key_id: str, blob: bytes,
                   pin: str) -> UserPrivateKey:
        """:raises app.pki.keys.WrongPin: the PIN does not open the inner layer.
        :raises RateLimited: ``pin_kdf_busy``, too many derivations waiting (nothing tried).
        """
        binding = key_binding(certificate_id)
        try:
            inner = await self.protector.unwrap(master_key_id, blob, binding)
        except ValueError:
            # The outer layer failed: a wrong or retired master key, not the holder's fault.
            raise DependencyUnavailable("the key store cannot open this key",
                                        code="key_store_error") from None
        der = await self.pool.run(open_with_pin, inner, pin, binding)
        return private_key_from_der(der)

    def close(self) -> None:
        self.pool.close()
