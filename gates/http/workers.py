"""The other ComfyUI workers of a shared bus, and Resume forwarded to one of them.

Workers that share one bus (a farm on one object store, a multi-GPU box) park runs any of them
may resume; the person picks where it runs. This server only ever talks to the workers its
setting names (DATASET_GATES_WORKERS: URLs separated by commas or spaces, e.g.
`http://gpu-2:8188, http://gpu-3:8188`), never to a URL a request brings, so the resume route
cannot be turned into a way to reach other machines (server-side request forgery). The worker
checks the run's seal itself: the workers of a farm share DATASET_GATES_PARK_SECRET.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp

ENV_VAR = "DATASET_GATES_WORKERS"
NAME_VAR = "DATASET_GATES_WORKER"  # this worker's name in the parked runs it writes
TIMEOUT_S = 15.0


class WorkerError(RuntimeError):
    """A worker named in the setting could not be reached, or did not answer as a worker does."""


def workers(environ: Mapping[str, str] | None = None) -> list[str]:
    """The worker URLs the setting allows, normalised (no trailing slash), in its order.

    Raises:
        ValueError: a listed URL that is not http(s)://host[:port] (the setting names the fix).
    """
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    out: list[str] = []
    for part in value.replace(",", " ").split():
        url = urllib.parse.urlsplit(part)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError(f"{ENV_VAR}: {part!r} is not a worker's http(s)://host:port")
        if url.username is not None or url.password is not None:  # it would show in /workers and errors
            raise ValueError(f"{ENV_VAR}: a worker URL carries no user or password ({url.hostname})")
        normal = f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"
        if normal not in out:
            out.append(normal)
    return out


def allowed(worker: object, environ: Mapping[str, str] | None = None) -> str:
    """`worker` as the setting lists it; ValueError when it is not one of them."""
    if not isinstance(worker, str):
        raise ValueError("worker must be one of the worker URLs this server lists")
    wanted = worker.strip().rstrip("/")
    if wanted not in workers(environ):
        raise ValueError(f"{worker!r} is not one of the workers this server may resume on (set by {ENV_VAR})")
    return wanted


async def forward_resume(worker: str, prefix: str, slot_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST `body` to the worker's resume route for `slot_id`: its (status, JSON answer).

    Raises:
        WorkerError: the worker did not answer in time, refused the connection, or answered
            with something that is not JSON.
    """
    url = f"{worker}{prefix}/resume/{urllib.parse.quote(slot_id, safe='')}"
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=body) as response:
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                raise WorkerError(
                    f"{worker} answered {response.status} without JSON: is it a ComfyUI with this pack?"
                ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WorkerError(f"{worker} did not answer ({type(exc).__name__}): is it running?") from None
