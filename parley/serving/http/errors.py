"""Errors as Rasa's server answers them: a 4xx (or 5xx) with a JSON body, never a traceback.

::

    {"version": "0.1.0", "status": "failure", "message": "…", "reason": "BadRequest",
     "details": {}, "help": null, "code": 400}

Handlers raise :class:`HTTPError`; :func:`exception_handlers` turns it, Starlette's own
errors (404 for an unknown path, 405 for a wrong method) and Parley's errors into that body.
Anything else is a bug: it is logged with its traceback and answered with a 500 whose
message says so, without the traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley import __version__
from parley.errors import (
    BrokerError, DataError, LockError, ModelArchiveError, ParleyError, StoreError,
)

__all__ = ["HTTPError", "bad_request", "error_response", "exception_handlers"]

logger = logging.getLogger(__name__)

_REASONS = {400: "BadRequest", 401: "NotAuthenticated", 403: "NotAuthorized", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict",
            413: "PayloadTooLarge", 415: "UnsupportedMediaType", 500: "ServerError",
            503: "ServiceUnavailable"}


class HTTPError(Exception):
    """An answer other than success: status, Rasa's ``reason`` word, and a message that
    says what to do. ``details`` names the offending parameter, as Rasa's does."""

    def __init__(self, status: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or _REASONS.get(status, "Error")
        self.details = details or {}
        self.headers = headers


def bad_request(message: str, parameter: str | None = None, where: str = "body") -> HTTPError:
    details = {"parameter": parameter, "in": where} if parameter else None
    return HTTPError(400, message, details=details)


def error_response(error: HTTPError) -> JSONResponse:
    body = {"version": __version__, "status": "failure", "message": error.message,
            "reason": error.reason, "details": error.details, "help": None,
            "code": error.status}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _from_parley(error: ParleyError) -> HTTPError:
    if isinstance(error, DataError):
        return HTTPError(400, str(error))
    if isinstance(error, LockError):
        return HTTPError(503, str(error), headers={"Retry-After": "1"})
    if isinstance(error, StoreError):
        # The lock store raises it too; the error's own text names which store failed.
        return HTTPError(503, f"a tracker or lock store failed: {error}")
    if isinstance(error, BrokerError):  # raise_on_failure: the turn is saved, not published
        return HTTPError(503, f"the event broker failed: {error}")
    if isinstance(error, ModelArchiveError):
        return HTTPError(409, str(error), reason="Conflict")
    return HTTPError(400, str(error))


async def _on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPError)
    return error_response(error)


async def _on_starlette_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = {404: f"nothing at {request.url.path}; see docs/server.md for the endpoints.",
               405: f"{request.method} is not allowed on {request.url.path}."}.get(
        error.status_code, str(error.detail))
    headers = dict(error.headers) if error.headers else None
    return error_response(HTTPError(error.status_code, message, headers=headers))


async def _on_parley_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ParleyError)
    return error_response(_from_parley(error))


async def _on_bug(request: Request, error: Exception) -> Response:
    logger.exception("%s %s failed: a bug in Parley", request.method, request.url.path)
    return error_response(HTTPError(
        500, f"an unexpected error occurred ({type(error).__name__}); this is a bug in "
             "Parley, the server's log has the details.", reason="ServerError"))


def exception_handlers() -> dict[Any, Any]:
    return {HTTPError: _on_http_error, HTTPException: _on_starlette_error,
            ParleyError: _on_parley_error, Exception: _on_bug}
