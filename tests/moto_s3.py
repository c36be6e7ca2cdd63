"""A real S3 wire protocol on loopback for the tests: moto's standalone S3 server.

`S3Server` runs moto's server app (`moto.server`, what `moto_server` and ThreadedMotoServer
run) on 127.0.0.1 and a free port, in a thread, with two additions in front of it:

- writes are serialized: moto checks If-Match / If-None-Match and then stores the object
  with no lock between (`moto/s3/responses.py` `put_object`), so two concurrent conditional
  PUTs could both pass; S3, R2 and MinIO decide them atomically, and the bus relies on that;
- faults on demand (`faults`): an HTTP 503, a connection reset, a slow answer, for the next
  N requests of a method, to test retries and what a failure leaves.

Nothing here is a mock of S3: obstore speaks HTTP to moto's S3 implementation.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

ACCESS_KEY = "AKIATESTKEYID0000000"
SECRET_KEY = "test-secret-do-not-print-9f3a7c"
REGION = "us-east-1"
_buckets = itertools.count()


@dataclass
class _Fault:
    kind: str  # "503", "reset" or "slow"
    count: int
    methods: set[str]
    seconds: float = 0.0


@dataclass
class Faults:
    """Faults for the next requests: `add("503", 2, "PUT")` fails the next two PUTs."""

    planned: list[_Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0

    def add(self, kind: str, count: int, methods: str = "GET PUT POST DELETE HEAD", seconds: float = 0.0) -> None:
        with self.lock:
            self.planned.append(_Fault(kind, count, set(methods.split()), seconds))

    def clear(self) -> None:
        with self.lock:
            self.planned.clear()
            self.hits = 0

    def take(self, method: str) -> _Fault | None:
        with self.lock:
            for fault in self.planned:
                if method in fault.methods and fault.count > 0:
                    fault.count -= 1
                    self.hits += 1
                    return fault
        return None


class _App:
    """moto's WSGI app with writes serialized and faults injected."""

    def __init__(self, app: Callable[..., Iterable[bytes]], faults: Faults):
        self.app, self.faults = app, faults
        self.writes = threading.Lock()
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request, in order

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        self.seen.append((method, environ.get("PATH_INFO", "")))
        fault = self.faults.take(method)
        if fault is not None and fault.kind == "503":
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            start_response("503 Service Unavailable", [("Content-Length", str(len(body)))])
            return [body]
        if fault is not None and fault.kind == "reset":
            sock = environ.get("werkzeug.socket")
            if isinstance(sock, socket.socket):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # an RST, not a clean close
            return []
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        if method in ("PUT", "POST", "DELETE"):
            with self.writes:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class S3Server:
    """moto's S3 on 127.0.0.1:<free port>; `bucket()` makes a fresh bucket."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self.faults = Faults()
        self.app = _App(DomainDispatcherApplication(create_backend_app), self.faults)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._client: Any = None

    def env(self, **extra: str) -> dict[str, str]:
        """The AWS variables a worker sets to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
            "DATASET_GATES_S3_RETRIES": "3",
            **extra,
        }

    def bucket(self) -> str:
        """A new, empty bucket."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                region_name=REGION,
            )
        name = f"bus-{os.getpid()}-{next(_buckets)}"
        self._client.create_bucket(Bucket=name)
        return name

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        """The requests served after `mark` (a `len(server.app.seen)` taken earlier)."""
        return self.app.seen[mark:]

    def keys(self, bucket: str) -> Iterator[str]:
        """Every key in `bucket` (what a person sees in the bucket's console)."""
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            yield from (o["Key"] for o in page.get("Contents", []))

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
