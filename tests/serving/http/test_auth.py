"""Token and JWT auth, as Rasa's server checks them."""

from __future__ import annotations

import time

import pytest

from tests.conftest import needs_shared_data

pytestmark = needs_shared_data
jwt = pytest.importorskip("jwt", reason="JWT auth needs PyJWT (parley[server])")

SECRET = "a-secret-that-is-long-enough-for-hs256-keys"


def bearer(payload, secret=SECRET, method="HS256"):
    return {"Authorization": f"Bearer {jwt.encode(payload, secret, algorithm=method)}"}


def test_a_token_should_be_required_when_the_server_has_one(make_client):
    client = make_client(auth_token="s3cret")
    denied = client.get("/status")
    assert denied.status_code == 401 and denied.json()["reason"] == "NotAuthenticated"
    assert client.get("/status?token=wrong").status_code == 401
    assert client.get("/status?token=s3cret").status_code == 200
    # Given twice, which would count? (Rasa's server takes the first, Starlette the last.)
    twice = client.get("/status?token=wrong&token=s3cret")
    assert twice.status_code == 400 and "given 2 times" in twice.json()["message"]
    # The channels and the health checks stay open, as in Rasa.
    assert client.get("/").status_code == 200
    assert client.get("/version").status_code == 200
    assert client.post("/webhooks/rest/webhook", json={"message": "hi"}).status_code == 200


def test_jwt_roles_should_decide_what_a_caller_may_see(make_client):
    client = make_client(jwt_secret=SECRET)
    admin = bearer({"user": {"username": "root", "role": "admin"}})
    user = bearer({"user": {"username": "alice", "role": "user"}})
    assert client.get("/status", headers=admin).status_code == 200
    assert client.get("/conversations/alice/tracker", headers=user).status_code == 200
    other = client.get("/conversations/bob/tracker", headers=user)
    assert other.status_code == 403 and other.json()["reason"] == "NotAuthorized"
    assert client.get("/status", headers=user).status_code == 403
    assert client.get("/status", headers=bearer({"user": {}})).status_code == 403
    assert client.get("/status").status_code == 401
    forged = bearer({"user": {"role": "admin"}}, secret="another-secret-that-is-long-enough-for-hs256")
    assert client.get("/status", headers=forged).status_code == 401
    expired = bearer({"user": {"role": "admin"}, "exp": int(time.time()) - 10})
    assert client.get("/status", headers=expired).status_code == 401
    assert client.get("/status", headers={"Authorization": "Bearer nonsense"}).status_code \
        == 401


def test_a_token_or_a_jwt_should_each_be_enough(make_client):
    client = make_client(auth_token="s3cret", jwt_secret=SECRET)
    assert client.get("/status?token=s3cret").status_code == 200
    assert client.get("/status", headers=bearer({"user": {"role": "admin"}})).status_code \
        == 200
