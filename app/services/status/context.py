"""What every part of the status service shares: its wiring, and this replica's coherence."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from app.domain.ports import Clock, KeyProtector, UnitOfWorkFactory
from app.pki.ca import CertificateAuthority
from app.settings import StatusSettings


@dataclass
class Coherence:
    """This replica's view of the status generation and its lease."""

    replica_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    known: int = -1  # generation whose changes are applied to memory; -1: none yet
    acked: int = -1
    epoch: int = 0  # bumped on every memory invalidation; guards fills racing one
    coherent_until: float = 0.0  # monotonic; memory is trusted before it
    last_renew: float = -1e9
    replica: bool = False  # a serving process: it holds a lease and keeps copies in memory


@dataclass
class StatusContext:
    """One object, so that replacing ``settings`` (operators, tests) reaches every part.

    :param wall_clock: real time for leases between replicas (the business ``clock`` may be a
        test's fixed clock).
    """

    uow: UnitOfWorkFactory
    ca: CertificateAuthority
    protector: KeyProtector
    settings: StatusSettings
    clock: Clock
    wall_clock: Clock
    distribution_point: str  # the CRL URL certificates carry; the CRL's issuingDistributionPoint
    coherence: Coherence = field(default_factory=Coherence)
