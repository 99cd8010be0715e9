"""Why the server refuses an event. Each has a stable code; the message names the facts in Chinese.

A refused event is stored with its code and message and reported in its push result; the terminal
shows it in its rejected list. None of these fails the batch.
"""

from __future__ import annotations

from server.core.errors import Conflict, ValidationFailed


class EventRefused(Conflict):
    """Base of the procedural refusals (409: the event conflicts with the case as it stands)."""

    code = "event_refused"
    title = "该执法行为不符合程序要求"


class CaseNotOnServer(EventRefused):
    """The case is not known yet: its opening may still be on a partner's terminal (deferred)."""

    code = "case_not_on_server"
    title = "服务器上尚无该案件，待立案记录同步后再提交"


class CaseOfOtherAgency(EventRefused):
    code = "case_other_agency"
    title = "该案件不属于本执法主体"


class CaseExists(EventRefused):
    code = "case_exists"
    title = "该案件已立案"


class CaseAlreadyClosed(EventRefused):
    code = "case_closed"
    title = "该案件已结案，不能再记录执法行为"


class EnforcementItemUnknown(EventRefused):
    code = "enforcement_item_unknown"
    title = "执法事项不在本执法主体的执法事项清单中"


class EnforcementItemMismatch(EventRefused):
    code = "enforcement_item_mismatch"
    title = "执法类别或行为种类与执法事项清单不符"


class TwoOfficersRequired(EventRefused):
    code = "two_officers_required"
    title = "执法人员不得少于两人，且须持有效执法证件并具有相应执法类别和区域"


class CredentialNotPresent(EventRefused):
    code = "credential_not_present"
    title = "出示的执法证件不属于在场的执法人员"


class RightsNoticeMissing(EventRefused):
    code = "rights_notice_missing"
    title = "作出决定前未送达权利告知书"


class StatementPeriodRunning(EventRefused):
    code = "statement_period_running"
    title = "陈述、申辩期限尚未届满，当事人也未书面放弃"


class StatementPeriodTooShort(EventRefused):
    code = "statement_period_too_short"
    title = "权利告知书给予的陈述、申辩期限短于本机关规定"


class WaiverNotInWriting(EventRefused):
    code = "waiver_not_in_writing"
    title = "放弃陈述、申辩须由当事人书面提出"


class HearingRightNotNotified(EventRefused):
    code = "hearing_right_not_notified"
    title = "拟作出的处罚应当告知听证权利，而权利告知书未告知"


class SimpleProcedureLimit(EventRefused):
    code = "simple_procedure_limit"
    title = "超出简易程序（当场处罚）的适用范围"


class PartyMissing(EventRefused):
    code = "party_missing"
    title = "尚未确认当事人"


class DecisionExists(EventRefused):
    code = "decision_exists"
    title = "本案已作出决定"


class DecisionMissing(EventRefused):
    code = "decision_missing"
    title = "本案尚未作出决定"


class AmountInvalid(ValidationFailed):
    code = "amount_invalid"
    title = "金额不正确"


class EventIdReused(ValidationFailed):
    """422: the id was used before for an event with different content."""

    code = "event_id_reused"
    title = "事件编号已被内容不同的事件使用"


class EventIdInvalid(ValidationFailed):
    code = "event_id_invalid"
    title = "事件编号须为终端生成的 UUIDv7"
