"""Dependency aliases for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from app.bootstrap import Container
from app.domain.errors import Forbidden, Unauthenticated
from app.observability import note_client
from app.services.auth import Principal, Scope

SCOPE_DESCRIPTIONS = {
    Scope.ISSUE.value: "Start verifications; issue, reissue and unlock certificates",
    Scope.READ.value: "Read and look up certificates",
    Scope.REVOKE.value: "Revoke certificates",
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


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def current_principal(
    security_scopes: SecurityScopes, container: ContainerDep,
    authorization: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """401 for a missing or bad token, 403 for a token without the operation's scope."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("a Bearer access token is required", code="token_missing")
    principal = await container.auth.authenticate(token.strip())
    note_client(principal.client_id)
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise Forbidden(f"the token lacks the scope {' '.join(missing)}", code="scope_missing")
    return principal


async def metrics_reader(
    security_scopes: SecurityScopes, container: ContainerDep,
    authorization: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal | None:
    """Production: a token with ``metrics:read`` (metrics name routes, clients' activity and
    outages). Development: open, so a local Prometheus needs no client."""
    if not container.settings.is_production:
        return None
    return await current_principal(security_scopes, container, authorization)


IssueClient = Annotated[Principal, Security(current_principal, scopes=[Scope.ISSUE.value])]
ReadClient = Annotated[Principal, Security(current_principal, scopes=[Scope.READ.value])]
RevokeClient = Annotated[Principal, Security(current_principal, scopes=[Scope.REVOKE.value])]
SignClient = Annotated[Principal, Security(current_principal, scopes=[Scope.SIGN.value])]
IdentityCheckClient = Annotated[Principal, Security(current_principal,
                                                   scopes=[Scope.IDENTITY_CHECK.value])]
AuditClient = Annotated[Principal, Security(current_principal, scopes=[Scope.AUDIT.value])]
MetricsReader = Annotated[Principal | None,
                          Security(metrics_reader, scopes=[Scope.METRICS.value])]
