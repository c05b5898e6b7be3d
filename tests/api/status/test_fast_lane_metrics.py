"""The OCSP fast lane answers cache hits before any middleware, and counts them itself: the
answer, the request and its latency reach /metrics (tallied, and added at each scrape)."""

from __future__ import annotations

import re

from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.status import get_path, issue, ocsp_request, post_ocsp


def _sample(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_fast_lane_hits_are_counted_in_metrics(service: Service, bank: Bank) -> None:
    _resource, cert = await issue(bank, 1)
    request_der = ocsp_request(cert, service.container.issuer.ca.certificate)
    await post_ocsp(service.http, request_der)  # a miss: fills the memory
    await service.http.get(get_path(request_der))
    assert service.container.status.cached(request_der) is not None
    before = (await service.http.get("/metrics")).text
    for _ in range(3):
        await post_ocsp(service.http, request_der)
    for _ in range(2):
        assert (await service.http.get(get_path(request_der))).status_code == 200
    after = (await service.http.get("/metrics")).text

    def grew(name: str, labels: str) -> float:
        return _sample(after, name, labels) - _sample(before, name, labels)

    assert grew("certcloud_ocsp_responses_total", 'status="good"') == 5
    assert grew("certcloud_http_requests_total",
                'method="POST",route="/ocsp",status="200"') == 3
    assert grew("certcloud_http_requests_total",
                'method="GET",route="/ocsp/{encoded:path}",status="200"') == 2
    assert grew("certcloud_http_request_seconds_count", 'method="POST",route="/ocsp"') == 3
    assert grew("certcloud_http_request_seconds_bucket",
                'le="+Inf",method="POST",route="/ocsp"') == 3
    assert grew("certcloud_http_request_seconds_sum", 'method="POST",route="/ocsp"') > 0
    # and nothing is counted twice: a second scrape adds nothing
    again = (await service.http.get("/metrics")).text
    assert _sample(again, "certcloud_ocsp_responses_total", 'status="good"') == _sample(
        after, "certcloud_ocsp_responses_total", 'status="good"')
