"""A signature while the PIN KDF's line is full (issue 11, finding 2): 429 ``pin_kdf_busy``
with Retry-After, and no PIN try is used up."""

from __future__ import annotations

import asyncio
import base64
import threading

from app.services.kdf_pool import KdfPool
from tests.support.app import Service
from tests.support.bank import Bank, Holder
from tests.support.problems import assert_problem

BODY = {"data": base64.b64encode(b"transfer 10,000 KRW").decode(), "format": "raw"}


async def test_full_kdf_line_is_429_and_costs_no_try(service: Service, bank: Bank,
                                                     holder: Holder) -> None:
    custody = service.container.custody
    original = custody.pool
    custody.pool = KdfPool(workers=1, max_waiting=0)
    gate, running = threading.Event(), threading.Event()

    def occupy() -> None:
        running.set()
        gate.wait()

    busy = asyncio.ensure_future(custody.pool.run(occupy))
    try:
        await asyncio.to_thread(running.wait, 60)
        for pin in (holder.pin, "000000"):
            reply = await bank.post(f"/v1/certificates/{holder.id}/signatures",
                                    {"pin": pin, **BODY})
            assert_problem(reply, 429, "pin_kdf_busy")
            assert reply.headers["retry-after"] == "1"
        state = (await bank.get(f"/v1/certificates/{holder.id}")).json()
        assert state["remaining_pin_attempts"] == 5  # neither the right nor a wrong PIN counted
    finally:
        gate.set()
        await busy
        custody.pool.close()
        custody.pool = original
    ok = await bank.post(f"/v1/certificates/{holder.id}/signatures",
                         {"pin": holder.pin, **BODY})
    assert ok.status_code == 200, ok.text
