"""Who may call the HTTP API: Rasa's token and JWT checks, in Rasa's order.

1. ``?token=…`` equal to ``--auth-token``: allowed.
2. ``Authorization: Bearer <JWT>`` signed with ``--jwt-secret`` (``--jwt-method``, HS256 by
   default; for RS256/ES256 the secret is the public key): its payload's ``user.role``
   decides — ``admin`` may call everything, ``user`` only the conversation whose id is its
   ``user.username``; anything else gets 403. An expired token (``exp``) is not valid.
3. Neither configured: everyone is allowed.
4. Otherwise 401.

The channels (``/webhooks/…``) are not behind this check, as in Rasa: they are what the
users of the assistant talk to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from parley.serving.http.body import query_value
from parley.serving.http.errors import HTTPError

__all__ = ["Auth", "decode_jwt"]

BEARER = "bearer "


def decode_jwt(token: str, key: str, method: str) -> dict[str, Any] | None:
    """The payload of a valid token, None for an invalid one (bad signature, expired,
    malformed)."""
    import jwt

    try:
        payload = jwt.decode(token, key, algorithms=[method])
    except jwt.PyJWTError:
        return None
    except (ValueError, TypeError, NotImplementedError):  # a key of the wrong kind
        return None
    return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Auth:
    token: str | None = None
    jwt_secret: str | None = None
    jwt_method: str = "HS256"

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.jwt_secret is not None

    def check(self, request: Request, conversation_id: str | None = None) -> None:
        """Return when the request may go on; raise a 401 or 403 otherwise."""
        # (a token given twice is a 400 like any query parameter: which one would count?
        # Rasa's server takes the first, Starlette's last)
        if self.token is not None and query_value(request, "token") == self.token:
            return
        payload = self._jwt_payload(request)
        if payload is not None:
            user = payload.get("user")
            user = user if isinstance(user, dict) else {}
            role = user.get("role")
            if role == "admin" or (role == "user" and conversation_id is not None
                                   and user.get("username") == conversation_id):
                return
            raise HTTPError(403, "User has insufficient permissions: the token's user.role "
                                 "must be 'admin', or 'user' with user.username the "
                                 "conversation's id.")
        if not self.enabled:
            return
        raise HTTPError(401, "User is not authenticated: pass ?token=<the server's "
                             "--auth-token> or an Authorization: Bearer <JWT> header signed "
                             "with its --jwt-secret.")

    def _jwt_payload(self, request: Request) -> dict[str, Any] | None:
        if self.jwt_secret is None:
            return None
        header = request.headers.get("authorization", "")
        if not header.lower().startswith(BEARER):
            return None
        return decode_jwt(header[len(BEARER):].strip(), self.jwt_secret, self.jwt_method)
