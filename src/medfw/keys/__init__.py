"""The key lifecycle: signing approvals (M-of-N), audited signing, rotation and revocation."""

from medfw.keys.approval_policy import ApprovalResult, RequireApprovals
from medfw.keys.approvals import Approval, ApprovalRequest, sign_approval
from medfw.keys.guard import GuardedSigner

__all__ = [
    "Approval",
    "ApprovalRequest",
    "ApprovalResult",
    "GuardedSigner",
    "RequireApprovals",
    "sign_approval",
]
