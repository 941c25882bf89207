"""Who sees and changes a case: the access rules of docs/web.md, decided in one place.

The person at risk did not ask to be in the database. Before an accept, the people paged for a case
see it whole: they must decide to take it. Once it is accepted, only its holder (and team leads and
managers) sees who the person is; everyone else paged sees a stub. After the case is resolved the
holder keeps the personal fields for a while, then a stub; reading an old case is break-glass: a
reason, kept on the audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from responder.accounts.service import Principal
from responder.domain import AUDITOR, LEADS, OPEN, PAGED_ROLES, RESOLVED
from responder.store.models import Case

OLD_CASE = "This case was resolved a while ago: its details open only with a reason."


class View(Enum):
    FULL = "full"  # the alert's personal fields, the timeline, the tasks
    STUB = "stub"  # reference, status, risk, region, who has it: nothing personal
    NONE = "none"  # 403, and the attempt audited


@dataclass(frozen=True)
class CaseAccess:
    view: View
    answer: bool = False  # accept or pass it (a person paged while nobody has it)
    work: bool = False  # tick tasks, add notes, record the outcome (a resolved one answers 409)
    reason_required: bool = False  # the full view, and any change, only with a reason (an old case)
    why: str = ""  # for a refusal or a stub: said to the person, never personal

    @property
    def full(self) -> bool:
        return self.view is View.FULL and not self.reason_required


def case_access(
    principal: Principal, case: Case, paged: bool, now: datetime, holder_window: timedelta
) -> CaseAccess:
    """What `principal` may see and do on `case`; `paged` says a page for the case reached their
    phone. Being paged or holding a case counts only for the roles that are paged (an auditor or an
    admin linked to a roster person gains nothing by it)."""
    resolved = case.status == RESOLVED
    old = resolved and case.resolved_at is not None and now >= case.resolved_at + holder_window
    on_call = principal.has(*PAGED_ROLES)
    paged, unclaimed = paged and on_call, case.status == OPEN and case.accepted_by is None
    if principal.has(*LEADS):
        return CaseAccess(
            View.FULL,
            answer=paged and unclaimed,
            work=True,
            reason_required=old,
            why=OLD_CASE if old else "",
        )
    holder = on_call and principal.person_id is not None and case.accepted_by == principal.person_id
    if holder and not old:
        return CaseAccess(View.FULL, work=True)
    if holder:
        return CaseAccess(View.STUB, why="Resolved long enough ago that its details are closed to you.")
    if principal.has(AUDITOR) and resolved:
        return CaseAccess(View.FULL, reason_required=old, why=OLD_CASE if old else "")
    if paged and unclaimed:
        return CaseAccess(View.FULL, answer=True)
    if paged:
        return CaseAccess(View.STUB, why="Someone else has this case: its details are theirs.")
    return CaseAccess(View.NONE, why="this case was not paged to you")


def work_refusal(access: CaseAccess, what: str) -> str:
    if access.reason_required:
        return f"this case was resolved long ago: open it with a reason first; you cannot {what} here"
    return f"only the case's holder, team leads and managers can {what}"
