"""Relying-party status: the OCSP responder, the CRL, and publishing revocations to both.

An OCSP request without a nonce is answered from memory (:mod:`.cache`), else from the stored
pre-signed response, else by one signature that is then stored (:mod:`.answers`). A revocation
replaces the stored responses in its own transaction (:mod:`.revocations`); every replica then
drops the serial from memory and acknowledges the change (:mod:`.replicas`), and the revoking
request waits, before it replies, until a CRL covering it is stored (:mod:`.crl`) and every
replica with a live lease has acknowledged it. So the reply to a revoke call means every
replica says ``revoked`` on OCSP, CRL and JSON status. :class:`StatusService` is the one object
the rest of the app holds.
"""

from app.pki.ocsp import MAX_REQUEST_BYTES  # the routes refuse more before parsing
from app.services.status.refresher import RefreshReport
from app.services.status.replies import CrlCopy, OcspReply
from app.services.status.service import StatusService

__all__ = ["MAX_REQUEST_BYTES", "CrlCopy", "OcspReply", "RefreshReport", "StatusService"]
