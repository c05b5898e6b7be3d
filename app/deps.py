"""Dependency aliases for the routers: each route asks for the part it calls (a service, the
clock, the CA), never for the whole container."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from app.bootstrap import Container
from app.domain.errors import Forbidden, Unauthenticated
from app.domain.ports import Clock, PhoneVerifier
from app.observability import note_client
from app.pki.ca import CertificateAuthority
from app.services.audit import AuditService
from app.services.auth import AuthService, Principal, Scope
from app.services.certificates import CertificateService
from app.services.csc import CscService
from app.services.identity_check import IdentityCheckService
from app.services.lookup import LookupService
from app.services.signature_verification import SignatureVerificationService
from app.services.signing import SigningService
from app.services.suspension import SuspensionService
from app.services.verifications import VerificationService
from app.settings import Settings

SCOPE_DESCRIPTIONS = {
    Scope.ISSUE.value: "Start verifications; issue, reissue and unlock certificates",
    Scope.READ.value: "Read and look up certificates",
    Scope.REVOKE.value: "Revoke, suspend and resume certificates",
    Scope.SIGN.value: "Sign with a certificate's key, change its PIN, CSC API",
    Scope.AUDIT.value: "Read the audit trail (operators only)",
    Scope.METRICS.value: "Read /metrics (operators' scrapers; needed in production only)",
    Scope.IDENTITY_CHECK.value: "Check an RRN against a certificate's VID (relying parties; "
                                "never granted by default)",
}

oauth2_scheme = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(
        tokenUrl="/oauth2/token", scopes=SCOPE_DESCRIPTIONS)),
    scheme_name="bank_client", auto_error=False,
    description="OAuth2 client credentials for bank front-ends")


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def _part(read: Callable[[Container], Any]) -> Any:
    def get(request: Request) -> Any:
        return read(_container(request))
    return Depends(get)


ClockDep = Annotated[Clock, _part(lambda c: c.clock)]
SettingsDep = Annotated[Settings, _part(lambda c: c.settings)]
AuthDep = Annotated[AuthService, _part(lambda c: c.auth)]
VerificationsDep = Annotated[VerificationService, _part(lambda c: c.verifications)]
VerifierDep = Annotated[PhoneVerifier, _part(lambda c: c.verifier)]
CertificatesDep = Annotated[CertificateService, _part(lambda c: c.certificates)]
LookupDep = Annotated[LookupService, _part(lambda c: c.lookup)]
SigningDep = Annotated[SigningService, _part(lambda c: c.signing)]
SignatureVerificationDep = Annotated[SignatureVerificationService,
                                     _part(lambda c: c.signature_verification)]
IdentityCheckDep = Annotated[IdentityCheckService, _part(lambda c: c.identity_check)]
CscDep = Annotated[CscService, _part(lambda c: c.csc)]
SuspensionsDep = Annotated[SuspensionService, _part(lambda c: c.suspensions)]
CaDep = Annotated[CertificateAuthority, _part(lambda c: c.issuer.ca)]
# The audit page reads the chain in its own transaction (until an audit service owns it).
AuditDep = Annotated[AuditService, _part(lambda c: c.audit)]
ReadinessDep = Annotated[dict[str, Callable[[], Awaitable[None]]],
                         _part(lambda c: c.readiness_checks())]
PoolInUseDep = Annotated[int | None, _part(lambda c: c.connections_in_use())]


async def current_principal(
    security_scopes: SecurityScopes, auth: AuthDep,
    authorization: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """401 for a missing or bad token, 403 for a token without the operation's scope."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("a Bearer access token is required", code="token_missing")
    principal = await auth.authenticate(token.strip())
    note_client(principal.client_id)
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise Forbidden(f"the token lacks the scope {' '.join(missing)}", code="scope_missing")
    return principal


async def metrics_reader(
    security_scopes: SecurityScopes, settings: SettingsDep, auth: AuthDep,
    authorization: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal | None:
    """Production: a token with ``metrics:read`` (metrics name routes, clients' activity and
    outages). Development: open, so a local Prometheus needs no client."""
    if not settings.is_production:
        return None
    return await current_principal(security_scopes, auth, authorization)


IssueClient = Annotated[Principal, Security(current_principal, scopes=[Scope.ISSUE.value])]
ReadClient = Annotated[Principal, Security(current_principal, scopes=[Scope.READ.value])]
RevokeClient = Annotated[Principal, Security(current_principal, scopes=[Scope.REVOKE.value])]
SignClient = Annotated[Principal, Security(current_principal, scopes=[Scope.SIGN.value])]
IdentityCheckClient = Annotated[Principal, Security(current_principal,
                                                   scopes=[Scope.IDENTITY_CHECK.value])]
AuditClient = Annotated[Principal, Security(current_principal, scopes=[Scope.AUDIT.value])]
MetricsReader = Annotated[Principal | None,
                          Security(metrics_reader, scopes=[Scope.METRICS.value])]
