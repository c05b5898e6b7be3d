"""The SMS notices a person's phone on record gets about their certificate: what happened,
through which bank, when. A notice names no code, PIN or RRN: it is read on a lock screen."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone

KST = timezone(timedelta(hours=9), "KST")
_BANK_NAME_MAX = 40


class NoticeKind(enum.StrEnum):
    ISSUE = "issue"
    REISSUE = "reissue"
    REVOKE = "revoke"
    UNLOCK = "unlock"
    PIN_CHANGE = "pin_change"
    RENEW = "renew"
    SUSPEND = "suspend"
    RESUME = "resume"


_WHAT = {
    NoticeKind.ISSUE: "발급",
    NoticeKind.REISSUE: "재발급",
    NoticeKind.REVOKE: "폐기",
    NoticeKind.UNLOCK: "잠금 해제",
    NoticeKind.PIN_CHANGE: "PIN 변경",
    NoticeKind.RENEW: "자동 갱신",
    NoticeKind.SUSPEND: "효력정지",
    NoticeKind.RESUME: "효력회복",
}


def bank_label(name: str) -> str:
    """The bank as the notice names it: one line, bounded (client names are the operator's)."""
    printable = "".join(c if c.isprintable() else " " for c in name).strip()
    return printable[:_BANK_NAME_MAX] or "알 수 없는 기관"


def notice_text(kind: NoticeKind, *, bank: str, at: datetime, phone_replaced: bool = False,
                may_take_back: bool = False) -> str:
    """``phone_replaced``: for the phone that this change took off the record;
    ``may_take_back``: that phone may still start a reissue, and the notice says how."""
    when = at.astimezone(KST).strftime("%Y-%m-%d %H:%M KST")
    text = f"[Certcloud] {bank_label(bank)}에서 인증서 {_WHAT[kind]}: {when}."
    if phone_replaced:
        text += " 등록 휴대폰이 다른 번호로 바뀌었습니다."
        if may_take_back:
            return text + " 본인이 아니면 30일 안에 이 번호로 인증해 재발급하세요."
    return text + " 본인이 아니면 즉시 은행에 알리세요."
