"""The committed OpenAPI document is the app's; regenerate with `python -m app.openapi_doc`."""

from __future__ import annotations

from app.openapi_doc import DOCUMENT, current_document, render
from app.services.auth import Scope


def test_committed_openapi_matches_the_app() -> None:
    assert DOCUMENT.exists(), "run `python -m app.openapi_doc`"
    assert DOCUMENT.read_text() == render(current_document()), (
        "openapi/openapi.json is stale: run `python -m app.openapi_doc` and commit it")


def test_every_bank_operation_declares_its_scopes() -> None:
    document = current_document()
    for path, operations in document["paths"].items():
        if not path.startswith(("/v1/certificates", "/v1/verifications", "/csc/v1")):
            continue
        for method, operation in operations.items():
            security = operation.get("security")
            assert security, f"{method.upper()} {path} declares no security"
            scopes = security[0]["bank_client"]
            assert scopes and set(scopes) <= {s.value for s in Scope}, (method, path)


def test_every_route_has_a_response_model_and_operation_id() -> None:
    document = current_document()
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            assert ok and ok.get("content"), f"{method.upper()} {path} has no reply schema"
