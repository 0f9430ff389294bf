"""Errors a user can act on. The CLI prints them as one line (no traceback) and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a state the user must change. exit_code 2 = usage error, 1 = failure."""

    def __init__(self, message: str, exit_code: int = 1, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
