"""Models pulled from a model server (endpoints.yml's ``models``), as Rasa's server pulls them.

::

    models:
      url: "http://my-server.com/models/default"   # and token, headers, basic_auth, cafile
      wait_time_between_pulls: 10                    # seconds; null: pull once at start

The server asks for the archive before it serves (``parley run`` then needs no ``-m``) and
again every ``wait_time_between_pulls`` seconds, sending the ``ETag`` of the model it has as
``If-None-Match``: 304 (or 204) means "still the same", 404 "no model yet"; a 200 brings an
archive, saved under ``models_dir`` and loaded, then served in place of the old one. An
archive that is damaged or hostile is refused by the loader as any archive is: the error is
logged and the model being served stays, as do the conversations.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.errors import ActionError, ParleyError
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.http_endpoint import HttpEndpoint, endpoint_options

__all__ = ["DEFAULT_WAIT", "ModelServer", "Pulled", "keep_pulling", "pull_into"]

logger = logging.getLogger(__name__)

DEFAULT_WAIT = 100.0  # Rasa's default wait_time_between_pulls, in seconds
MAX_MODEL_BYTES = 4 << 30  # an archive larger than this is refused (disk, not memory)
CHUNK = 1 << 20
PULLED_PREFIX = "pulled-"


@dataclass(frozen=True)
class Pulled:
    path: Path
    etag: str | None


class ModelServer(HttpEndpoint):
    """Where the served model comes from; ``folder`` keeps the pulled archives."""

    what = "the model server"
    section = "models"
    start_hint = "Start it, or fix models in endpoints.yml."

    def __init__(self, url: str, folder: str | Path, *,
                 wait_time_between_pulls: float | None = DEFAULT_WAIT,
                 **options: Any) -> None:
        super().__init__(url, max_workers=1, **options)
        self.folder = Path(folder)
        self.wait = wait_time_between_pulls

    @classmethod
    def from_endpoint(cls, config: EndpointConfig, folder: str | Path) -> ModelServer:
        options = endpoint_options(config, ("wait_time_between_pulls",))
        wait = config.kwargs.get("wait_time_between_pulls", DEFAULT_WAIT)
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float))
                                 or not math.isfinite(wait) or wait <= 0):
            raise config.error(f"'wait_time_between_pulls' must be a positive number of "
                               f"seconds (or null: pull once), found '{wait}'.",
                               "wait_time_between_pulls")
        try:
            return cls(config.url or "", folder,
                       wait_time_between_pulls=None if wait is None else float(wait),
                       **options)
        except ActionError as error:
            raise config.error(str(error), "cafile" if "cafile" in str(error) else "url"
                               ) from None

    async def pull(self, etag: str | None) -> Pulled | None:
        """The archive the server has now, saved; None when it has nothing new (or none)."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._pool, self._download, etag),
                                      self.timeout + 1.0)

    def _download(self, etag: str | None) -> Pulled | None:
        headers = {key: value for key, value in self.headers.items() if key != "Content-Type"}
        if etag:
            headers["If-None-Match"] = etag
        request = urllib.request.Request(self._request_url, method="GET", headers=headers)
        label = "pulling the model"
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                if answer.status == 204:
                    return None
                return self._save(answer, answer.headers.get("ETag"))
        except urllib.error.HTTPError as error:
            with error:
                if error.code == 304:
                    return None
                if error.code == 404:
                    logger.info("the model server at %s has no model yet (404).", self.url)
                    return None
                raise ActionError(f"{label}: the model server at {self.url} answered HTTP "
                                  f"{error.code}.") from None
        except (TimeoutError, socket.timeout):
            raise self.timed_out(label) from None
        except urllib.error.URLError as error:
            raise ActionError(f"{label}: the model server at {self.url} cannot be reached "
                              f"({error.reason}). {self.start_hint}") from None

    def _save(self, answer: Any, etag: str | None) -> Pulled:
        """The body written whole to a new file (or nothing at all), named by its digest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.folder, prefix=".pull-", suffix=".tmp")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := answer.read(CHUNK):
                    size += len(chunk)
                    if size > MAX_MODEL_BYTES:
                        raise ActionError(f"pulling the model: the model server at {self.url} "
                                          f"sent more than {MAX_MODEL_BYTES >> 30} GiB.")
                    digest.update(chunk)
                    out.write(chunk)
            target = self.folder / f"{PULLED_PREFIX}{digest.hexdigest()[:16]}.tar.gz"
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return Pulled(target, etag)


async def pull_into(state: Any, server: ModelServer) -> bool:
    """Pull once and serve what came; whether the served model changed. Failures are
    logged: the model being served stays."""
    from parley.serving.agent import load

    try:
        pulled = await server.pull(state.model_etag)
        if pulled is None or str(pulled.path) == state.model_file:
            return False  # nothing new (a server without ETags sends the same bytes again)
        agent = await asyncio.to_thread(load, pulled.path)
    except (ParleyError, OSError, asyncio.TimeoutError) as error:
        logger.error("the model server's model was not loaded (%s); the server keeps %s.",
                     error, state.model_file or "no model")
        return False
    previous = state.model_file
    state.set_model(agent, pulled.path)
    state.model_etag = pulled.etag
    logger.info("now serving the model %s from the model server", pulled.path.name)
    if previous and previous != str(pulled.path) and Path(previous).name.startswith(
            PULLED_PREFIX) and Path(previous).parent == server.folder:
        Path(previous).unlink(missing_ok=True)  # an older pull, no longer served
    return True


async def keep_pulling(state: Any, server: ModelServer) -> None:
    """Pull every ``wait_time_between_pulls`` seconds until cancelled."""
    if server.wait is None:
        return
    while True:
        await asyncio.sleep(server.wait)
        await pull_into(state, server)
