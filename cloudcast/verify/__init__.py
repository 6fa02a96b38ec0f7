"""Stage: prove every pair of nodes talks over the overlay; show live tunnel state."""

from cloudcast.verify.probe import CONNECT_BUDGET, Probe, VerifyResult, verify
from cloudcast.verify.status import NodeStatus, PeerStatus, StatusResult, explain_failures, status

__all__ = [
    "CONNECT_BUDGET",
    "NodeStatus",
    "PeerStatus",
    "Probe",
    "StatusResult",
    "VerifyResult",
    "explain_failures",
    "status",
    "verify",
]
