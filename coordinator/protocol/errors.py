"""Errors in OpenAI's shape, on both sides: the exception every such error is, and the
JSON body it is answered with. Pure: no I/O."""

from __future__ import annotations

from typing import Any

# OpenAI's error "type" for each status family; clients switch on `code`, people read `message`.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "invalid_request_error",
}


def error_type_for(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(
    message: str,
    *,
    status: int,
    code: str | None = None,
    param: str | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    """The JSON object OpenAI sends with every error."""
    return {
        "error": {
            "message": message,
            "type": type or error_type_for(status),
            "param": param,
            "code": code,
        }
    }


class OpenAIError(Exception):
    """An error answered in OpenAI's shape: HTTP status, `code` for programs, words for people,
    the field at fault, and when to retry; the base of every such error, on both sides."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after


class OpenAIErrorKind(OpenAIError):
    """An error whose subclasses fix the status and code: raised with words and, where
    waiting helps, a retry_after (else the kind's default)."""

    status = 500
    code = "server_error"
    default_retry_after: int | None = None

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        kind = type(self)
        retry_after = kind.default_retry_after if retry_after is None else retry_after
        super().__init__(kind.status, kind.code, message, retry_after=retry_after)


class InvalidRequest(OpenAIError):
    """A chat request that cannot be served as sent: always the client's to fix (400)."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(400, code, message, param=param)
