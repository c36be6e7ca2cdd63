"""Fixtures for end-to-end tests against a real ComfyUI process.

Set COMFYUI_DIR (a ComfyUI checkout) and optionally COMFYUI_PYTHON (its interpreter; default:
the one running pytest). Without COMFYUI_DIR every test in this folder is skipped.

Fixtures (all reusable by other e2e modules):

- ``comfy_server`` (session): one ComfyUI started with this pack in a temp folder. A
  :class:`ComfyServer` with ``base_url``, ``ws_url``, ``input_dir``, ``output_dir``,
  ``temp_dir``, ``bus_dir``, ``log_path``, and helpers ``get``/``post``/``queue``/
  ``history``/``wait_history``/``wait_idle``/``pending_gates``/``ws()``/``log_tail()``.
- ``comfy`` (function): the same server, left idle after the test (a test that fails while
  a gate is paused would otherwise block the prompt worker for every later test).
- ``ws`` (function): a :class:`WsClient` connected with a fresh client id; queue with
  ``comfy.queue(prompt, ws.client_id)`` and the pack's events reach it.
- ``comfy_factory`` (function): ``comfy_factory(name, env=..., pack_names=...)`` starts an
  extra ComfyUI (e.g. with ``PYTHONHASHSEED`` set, or with the pack symlinked under two
  folder names) and stops it after the test. The session server is not affected.

When an e2e test fails, the tail of ComfyUI's log is attached to the report.

The frontend every server here serves is chosen by ``E2E_FRONTEND``: unset or ``bundled`` for
the one ComfyUI's venv ships, else a frontend's static folder, passed as ``--front-end-root``.
``E2E_NODES`` (``classic`` or ``vue``) is read by the UI tests: ``vue`` turns the frontend's
Vue nodes mode ("Nodes 2.0", setting ``Comfy.VueNodes.Enabled``) on in every tab they open.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
PACK_NAME = "dataset_gates"
SKIP_REASON = (
    "e2e: set COMFYUI_DIR to a ComfyUI checkout (and COMFYUI_PYTHON to its interpreter) to run the end-to-end tests"
)
START_TIMEOUT_S = 120.0
TERMINAL_EVENTS = ("execution_success", "execution_interrupted", "execution_error")
RESET_CLIENT = "e2e-reset"  # the client id the between-tests cleanup takes pauses over with

NODES_MODES = ("classic", "vue")

_SERVER: ComfyServer | None = None
_EXTRA_SERVERS: list[ComfyServer] = []


def e2e_enabled() -> bool:
    return bool(os.environ.get("COMFYUI_DIR", "").strip())


def frontend_root() -> Path | None:
    """The ``--front-end-root`` folder E2E_FRONTEND names, or None for the bundled frontend."""
    value = os.environ.get("E2E_FRONTEND", "").strip()
    if value in ("", "bundled"):
        return None
    root = Path(value).expanduser().resolve()
    if not (root / "index.html").is_file():
        raise pytest.UsageError(
            f"E2E_FRONTEND={value}: no index.html there (want 'bundled' or a frontend's static folder)"
        )
    return root


def nodes_mode() -> str:
    """``classic`` (the LiteGraph canvas draws nodes) or ``vue`` (Vue nodes mode), from E2E_NODES."""
    value = os.environ.get("E2E_NODES", "").strip().lower() or "classic"
    if value not in NODES_MODES:
        raise pytest.UsageError(f"E2E_NODES={value!r}: want one of {', '.join(NODES_MODES)}")
    return value


def pytest_report_header(config: pytest.Config) -> str:
    root = frontend_root()
    return f"e2e frontend: {root or 'bundled'}; nodes mode: {nodes_mode()}"


def e2e_required() -> bool:
    """DATASET_GATES_REQUIRE_E2E=1 (CI): what would skip the e2e tests stops the run instead."""
    return os.environ.get("DATASET_GATES_REQUIRE_E2E", "") not in ("", "0")


def _missing_for_e2e() -> str | None:
    """Why the e2e tests here could not run in full, or None."""
    if not e2e_enabled():
        return SKIP_REASON
    if not os.environ.get("COMFYUI_PYTHON", "").strip():
        return "the UI e2e tests need COMFYUI_PYTHON too"
    for module, package in (("requests", "requests"), ("websocket", "websocket-client")):
        try:
            __import__(module)
        except ImportError:
            return f"e2e tests need {package} (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without COMFYUI_DIR, skip everything in this folder with one reason; with
    DATASET_GATES_REQUIRE_E2E set, stop instead where anything the e2e tests need is missing."""
    if e2e_required() and any(E2E_DIR in Path(str(item.fspath)).resolve().parents for item in items):
        missing = _missing_for_e2e()
        if missing:
            pytest.exit(f"{missing} (DATASET_GATES_REQUIRE_E2E is set)", returncode=pytest.ExitCode.USAGE_ERROR)
    if e2e_enabled():
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and E2E_DIR in Path(str(item.fspath)).resolve().parents:
        for server in ([_SERVER] if _SERVER is not None else []) + _EXTRA_SERVERS:
            report.sections.append((f"ComfyUI log tail ({server.log_path})", server.log_tail(80)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WsClient:
    """A websocket to ComfyUI that records every JSON frame on a background thread.

    ``wait_for`` scans all frames received so far (from ``since``), so an event that arrived
    before the call is still found.
    """

    def __init__(self, ws_url: str, client_id: str | None = None, timeout: float = 10.0):
        import websocket  # websocket-client

        self.client_id = client_id or f"e2e-{uuid.uuid4().hex[:12]}"
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._ws = websocket.create_connection(f"{ws_url}?clientId={self.client_id}", timeout=timeout)
        self._ws.settimeout(0.5)
        self._thread = threading.Thread(target=self._reader, name=f"ws-{self.client_id}", daemon=True)
        self._thread.start()
        self.wait_for("status", timeout=timeout)  # ComfyUI greets every new socket

    def _reader(self) -> None:
        import websocket

        while not self._closed:
            try:
                frame = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # closed by either side
                break
            if isinstance(frame, bytes):  # binary previews; not used by these tests
                continue
            try:
                msg = json.loads(frame)
            except ValueError:
                continue
            with self._cond:
                self.events.append(msg)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def mark(self) -> int:
        """Index to pass as ``since`` to ignore everything received so far."""
        with self._cond:
            return len(self.events)

    def find(
        self, type_: str | tuple[str, ...], pred: Callable[[dict], bool] | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Data of the events received so far of this type (or types) matching ``pred``."""
        types = (type_,) if isinstance(type_, str) else type_
        with self._cond:
            return [
                e["data"]
                for e in self.events[since:]
                if e.get("type") in types and (pred is None or pred(e.get("data") or {}))
            ]

    def wait_for(
        self,
        type_: str | tuple[str, ...],
        pred: Callable[[dict], bool] | None = None,
        timeout: float = 30.0,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first event of this type (or types) matching ``pred``; returns {"type", "data"}."""
        types = (type_,) if isinstance(type_, str) else type_
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.events):
                    e = self.events[i]
                    i += 1
                    if e.get("type") in types and (pred is None or pred(e.get("data") or {})):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    seen = [e.get("type") for e in self.events[since:]][-40:]
                    raise TimeoutError(
                        f"no {types} event within {timeout}s (socket closed: {self._closed}); last events: {seen}"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_prompt_end(self, prompt_id: str, timeout: float = 60.0, since: int = 0) -> dict[str, Any]:
        """The terminal event (success / interrupted / error) of one prompt."""
        return self.wait_for(TERMINAL_EVENTS, lambda d: d.get("prompt_id") == prompt_id, timeout=timeout, since=since)

    def wait_pause(
        self, prompt_id: str | None = None, node: str | None = None, timeout: float = 60.0, since: int = 0
    ) -> dict[str, Any]:
        """Data of the pack's pause event; fails at once if the prompt ends first."""

        def match(d: dict) -> bool:
            return (prompt_id is None or d.get("prompt_id") == prompt_id) and (node is None or d.get("node") == node)

        e = self.wait_for(("datasete_gate.pause", *TERMINAL_EVENTS), match, timeout, since)
        if e["type"] != "datasete_gate.pause":
            raise AssertionError(f"prompt ended ({e['type']}) before any gate paused: {e['data']}")
        return e["data"]

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._ws.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ComfyServer:
    """A ComfyUI process with this pack loaded, in its own temp folders."""

    def __init__(
        self,
        comfy_dir: Path,
        python: str,
        root: Path,
        pack_names: tuple[str, ...] = (PACK_NAME,),
        env: dict[str, str] | None = None,
    ):
        self.pack_names = pack_names  # one symlink to this repository per name
        self.env = dict(env or {})
        self.comfy_dir = comfy_dir
        self.python = python
        self.root = root
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.input_dir = root / "input"
        self.output_dir = root / "output"
        self.temp_dir = root / "temp"
        self.user_dir = root / "user"
        self.nodes_dir = root / "custom_nodes"
        self.bus_dir = self.input_dir / "gate_bus"
        self.log_path = root / "comfyui.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        import requests

        self.http = requests.Session()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        for d in (self.input_dir, self.output_dir, self.temp_dir, self.user_dir, self.nodes_dir):
            d.mkdir(parents=True, exist_ok=True)
        for name in self.pack_names:
            (self.nodes_dir / name).symlink_to(REPO, target_is_directory=True)
        config = self.root / "extra_model_paths.yaml"
        config.write_text(f"e2e:\n    custom_nodes: {self.nodes_dir}\n")
        cmd = [
            self.python,
            str(self.comfy_dir / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--disable-api-nodes",
            "--input-directory",
            str(self.input_dir),
            "--output-directory",
            str(self.output_dir),
            "--temp-directory",
            str(self.temp_dir),
            "--user-directory",
            str(self.user_dir),
            "--database-url",
            f"sqlite:///{self.root / 'comfy.db'}",
            "--extra-model-paths-config",
            str(config),
        ]
        root = frontend_root()
        if root is not None:
            cmd += ["--front-end-root", str(root)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - ComfyUI writes it until stop() closes it
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.proc = subprocess.Popen(
            cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        import requests

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail(60)}")
            try:
                r = self.http.get(f"{self.base_url}/object_info/ImageGate", timeout=2)
                if r.status_code == 200:
                    if "ImageGate" not in r.json():
                        raise RuntimeError(
                            f"ComfyUI started without the Dataset Gates nodes (import failed?):\n{self.log_tail(60)}"
                        )
                    return
            except requests.RequestException:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ComfyUI not ready in {START_TIMEOUT_S}s:\n{self.log_tail(60)}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
        self.http.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    # -- HTTP --------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kw: Any):
        kw.setdefault("timeout", 10)
        return self.http.get(self.url(path), **kw)

    def post(self, path: str, **kw: Any):
        kw.setdefault("timeout", 10)
        return self.http.post(self.url(path), **kw)

    def queue(self, prompt: dict[str, Any], client_id: str | None = None) -> str:
        """POST /prompt; returns the prompt id, or fails showing ComfyUI's validation errors."""
        body: dict[str, Any] = {"prompt": prompt}
        if client_id:
            body["client_id"] = client_id
        r = self.post("/prompt", json=body)
        assert r.status_code == 200, f"/prompt refused ({r.status_code}): {r.text}"
        data = r.json()
        assert not data.get("node_errors"), f"/prompt node errors: {data['node_errors']}"
        return data["prompt_id"]

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        r = self.get(f"/history/{prompt_id}")
        r.raise_for_status()
        return r.json().get(prompt_id)

    def wait_history(self, prompt_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The history entry once the prompt has finished (history is written after the run)."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                return entry
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not in /history after {timeout}s")
            time.sleep(0.1)

    def pending_gates(self, client_id: str | None = None) -> list[dict[str, Any]]:
        r = self.get("/datasete_gate/pending", params={"client_id": client_id} if client_id else None)
        r.raise_for_status()
        return r.json()["pending"]

    def queue_busy(self) -> bool:
        q = self.get("/queue").json()
        return bool(q["queue_running"] or q["queue_pending"])

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.queue_busy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"ComfyUI queue still busy after {timeout}s")
            time.sleep(0.1)

    def reset(self, timeout: float = 30.0) -> None:
        """Leave the server idle: drop queued prompts, stop paused gates, interrupt the rest."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.post("/queue", json={"clear": True})
        deadline = time.monotonic() + timeout
        while self.queue_busy():
            for p in self.pending_gates(RESET_CLIENT):  # tokens only go to a pause's owner tab:
                token = p.get("token")  # take over the orphaned ones, interrupt the rest
                if token is None and p.get("orphaned"):
                    r = self.post("/datasete_gate/takeover", json={"node": p["node"], "client_id": RESET_CLIENT})
                    token = r.json().get("token") if r.ok else None
                if token:
                    self.post("/datasete_gate/cancel", json={"node": p["node"], "token": token})
            self.post("/interrupt", json={})
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not bring ComfyUI back to idle in {timeout}s")
            time.sleep(0.2)

    def ws(self, client_id: str | None = None) -> WsClient:
        return WsClient(self.ws_url, client_id)


def _comfy_setup() -> tuple[Path, str]:
    """(COMFYUI_DIR, the interpreter for ComfyUI), or skip / fail as the session server does."""
    if not e2e_enabled():
        pytest.skip(SKIP_REASON)
    pytest.importorskip("requests", reason="e2e tests need requests")
    pytest.importorskip("websocket", reason="e2e tests need websocket-client")
    comfy_dir = Path(os.environ["COMFYUI_DIR"]).expanduser().resolve()
    if not (comfy_dir / "main.py").is_file():
        pytest.fail(f"COMFYUI_DIR={comfy_dir} has no main.py")
    return comfy_dir, os.environ.get("COMFYUI_PYTHON", "").strip() or sys.executable


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    global _SERVER
    comfy_dir, python = _comfy_setup()
    server = ComfyServer(comfy_dir, python, tmp_path_factory.mktemp("comfyui"))
    _SERVER = server
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _SERVER = None


@pytest.fixture(scope="session")
def e2e_nodes_mode() -> str:
    """E2E_NODES: ``classic`` or ``vue`` (the UI tests turn Vue nodes mode on in their tabs)."""
    return nodes_mode()


@pytest.fixture
def comfy(comfy_server: ComfyServer) -> Iterator[ComfyServer]:
    comfy_server.reset()
    yield comfy_server
    comfy_server.reset()


@pytest.fixture
def ws(comfy: ComfyServer) -> Iterator[WsClient]:
    client = comfy.ws()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def comfy_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ComfyServer]]:
    """Start extra ComfyUI servers for one test: ``comfy_factory(name, env=..., pack_names=...)``.
    Each has its own temp folders and port, and is stopped when the test ends."""
    comfy_dir, python = _comfy_setup()
    started: list[ComfyServer] = []

    def start(name: str, env: dict[str, str] | None = None, pack_names: tuple[str, ...] = (PACK_NAME,)) -> ComfyServer:
        server = ComfyServer(comfy_dir, python, tmp_path_factory.mktemp(name), pack_names=pack_names, env=env)
        started.append(server)
        _EXTRA_SERVERS.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
            _EXTRA_SERVERS.remove(server)
