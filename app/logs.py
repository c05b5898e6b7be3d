"""Structured JSON logs. Secrets never reach a log call; this formatter adds a last guard."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from app.observability import RequestIdFilter

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_SECRET_KEYS = re.compile(r"pin|code|rrn|secret|password|token|key", re.IGNORECASE)
# Keys the pattern above would catch that name no secret (a problem code is a stable word).
_SAFE_KEYS = frozenset({"verification_id", "certificate_id", "client_id", "code_name",
                        "master_key_id", "status_code", "problem_code"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if _SECRET_KEYS.search(key) and key not in _SAFE_KEYS:
                value = "[redacted]"
            entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            if record.levelno >= logging.ERROR:  # unexpected: the operator needs the trace
                entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
