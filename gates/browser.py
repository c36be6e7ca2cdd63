"""The slot browser without ComfyUI: `python -m gates serve` runs this small aiohttp app.

It mounts the same routes ComfyUI gets (`GateRoutes`, at /datasete_gate) on a bus folder,
serves the pack's web/ folder at /web/, and answers GET / with the browser page. Nothing runs
gates here, so the waiter is a fresh, empty one.

Like ComfyUI, it refuses cross-origin requests that change things: a page on another site
could otherwise POST or DELETE to 127.0.0.1 from the user's own browser.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from .routes import GateRoutes, Handler
from .slots import SlotStore
from .waiter import Waiter

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE = WEB_DIR / "browser" / "index.html"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    """(hostname, port) of "host[:port]", the port defaulted by scheme; None if unparsable."""
    try:
        parts = urllib.parse.urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(origin: str, host: str, scheme: str = "http") -> bool:
    """Whether an Origin header names the host:port the request was sent to (its Host header).

    "null" (sandboxed frames, file: pages) and anything unparsable count as foreign.
    """
    try:
        parsed = urllib.parse.urlsplit(origin)
    except ValueError:
        return False
    if parsed.scheme not in _DEFAULT_PORTS:
        return False
    theirs = _host_port(parsed.netloc, parsed.scheme)
    ours = _host_port(host, scheme)
    return theirs is not None and theirs == ours


@web.middleware
async def origin_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for a state-changing request whose Origin differs from its Host.

    Requests without an Origin header (curl, scripts, same-origin GETs) pass: browsers always
    send Origin on cross-origin POST/DELETE, which is what this guards against.
    """
    origin = request.headers.get("Origin")
    if request.method not in SAFE_METHODS and origin is not None:
        if not same_origin(origin, request.headers.get("Host", ""), request.scheme):
            return web.json_response(
                {"error": f"cross-origin {request.method} refused: Origin {origin!r} does not "
                          f"match Host {request.headers.get('Host', '')!r}"}, status=403)
    return await handler(request)


def _page_html() -> str:
    """index.html with a <base> so its relative links resolve under /web/browser/."""
    return PAGE.read_text(encoding="utf-8").replace("<head>", '<head>\n  <base href="/web/browser/">', 1)


async def _index(request: web.Request) -> web.Response:
    return web.Response(text=_page_html(), content_type="text/html",
                        headers={"Cache-Control": "no-cache"})


def make_app(store: SlotStore) -> web.Application:
    """The browser app on one slot store: API at /datasete_gate, files at /web/, page at /."""
    if not PAGE.is_file():
        raise FileNotFoundError(f"the slot browser page is missing: {PAGE} (web/ must ship "
                                f"next to the gates package)")
    app = web.Application(middlewares=[origin_only_middleware])
    routes = web.RouteTableDef()
    GateRoutes(store, Waiter()).add_to(routes)
    app.add_routes(routes)
    app.router.add_get("/", _index)
    app.router.add_static("/web/", WEB_DIR, follow_symlinks=False)
    return app


async def _serve_until(runner: web.AppRunner, host: str, port: int, stop: asyncio.Event,
                       started: Callable[[], None]) -> None:
    """Listen on host:port, call `started`, serve until `stop` is set, then close every socket."""
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        started()
        await stop.wait()
    finally:
        await runner.cleanup()


async def _run(store: SlotStore, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Listen, say where, and wait for `stop` (forever by default: Ctrl-C ends it)."""
    runner = web.AppRunner(make_app(store), handle_signals=False)

    def say_where() -> None:
        for address in runner.addresses:
            shown_host, shown_port = address[0], address[1]
            if ":" in shown_host:
                shown_host = f"[{shown_host}]"
            print(f"Dataset Gates slot browser: http://{shown_host}:{shown_port}/", flush=True)
        print(f"bus folder: {store.root.resolve()}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    await _serve_until(runner, host, port, stop or asyncio.Event(), say_where)


def serve(store: SlotStore, host: str = "127.0.0.1", port: int = 8189) -> None:
    """Serve the browser until Ctrl-C. A port already in use raises OSError."""
    try:
        asyncio.run(_run(store, host, port))
    except KeyboardInterrupt:
        print("stopped", flush=True)


@contextmanager
def serving(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> Iterator[tuple[str, int]]:
    """Run `app` on its own event loop in a background thread; yields (host, port).

    For embedding the browser next to other work (a notebook, a test, a benchmark); port 0
    picks a free one.
    """
    started: queue.Queue = queue.Queue()
    holder: dict = {}

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), asyncio.Event()
        try:
            await _serve_until(runner, host, port, holder["stop"],
                               lambda: started.put(runner.addresses[0][1]))
        except OSError as exc:  # e.g. the port is taken: hand it to the caller
            started.put(exc)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    bound = started.get(timeout=30)
    if isinstance(bound, OSError):
        thread.join(10)
        raise bound
    try:
        yield host, bound
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
