"""The slot browser without ComfyUI: `python -m gates serve` runs this small aiohttp app.

It mounts the same routes ComfyUI gets (`GateRoutes`, at /datasete_gate) on a bus folder,
serves the pack's web/ folder at /web/, and answers GET / with the browser page. Nothing runs
gates here, so the waiter is a fresh, empty one.

Every request passes `guard` first, because the list, the images and the tensors are private
and the API deletes things:
- Its Host must be a name the server is bound to. A page on another site can rebind its own
  DNS name to 127.0.0.1 and then talk to us as "same origin"; its requests still carry its
  own name in Host, so refusing unknown names stops that (DNS rebinding).
- A state-changing request with an Origin must come from exactly our scheme, host and port:
  a page on another site could otherwise POST or DELETE to 127.0.0.1 from the user's browser.
- With a token (required when listening beyond loopback), every request for slot data must
  carry it: as the X-Dataset-Gates-Token header, or, on a GET (an <img> or a download link,
  which cannot send headers), as the `dataset_gates_token` query parameter. The page and its
  scripts (GET /, /web/...) are the pack's own public files and need none.

The token is never put in a cookie: cookies ignore ports, so the browser would send it to every
other service on the same host, which could then use it here. The printed URL carries it in
the fragment (/#token=...), which browsers never send over the network; the page moves it into
sessionStorage, which is scoped to this exact origin (scheme, host and port), and drops it from
the address bar. `--token` shows the token in the process list; the DATASET_GATES_TOKEN
environment variable or `--token-file` (a file only its owner can read) do not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import queue
import re
import secrets
import sys
import threading
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..bus import BusAdmin
from ..gate.waiter import Waiter
from ..secret_file import read_secret
from .routes import GateRoutes, Handler

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
PAGE = WEB_DIR / "browser" / "index.html"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Binding one of these listens on every address of the machine; see host_allowed.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
TOKEN_HEADER = "X-Dataset-Gates-Token"
TOKEN_QUERY = "dataset_gates_token"  # on a GET only: what <img> and download links can carry
TOKEN_ENV = "DATASET_GATES_TOKEN"
_TOKEN_RULE = re.compile(r"[A-Za-z0-9_-]{16,}")  # token_urlsafe's alphabet: safe in URLs


def _host_name(host: str) -> str:
    """A bind address or Host name as compared here: lowercase, IPv6 without brackets."""
    return host.strip().strip("[]").lower()


def _is_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the server on this machine: 127.0.0.0/8, ::1, localhost.

    Other names count as non-loopback even if they resolve to 127.0.0.1 today: what they
    resolve to can change, and a wrong "yes" here drops the token.
    """
    name = _host_name(host)
    address = _is_ip(name)
    return name == "localhost" or (address is not None and address.is_loopback)


def allowed_hosts_for(bind: str) -> frozenset[str]:
    """The Host names a server listening on `bind` answers to: the loopback names and `bind`.

    For a wildcard bind (0.0.0.0, ::) the entry stands for "any IP address" (see
    host_allowed), not for the machine's other names: its DNS names are not known for sure,
    and the token, required there, is what protects. Bind a name with --host to use it.
    """
    return LOOPBACK_HOSTS | {_host_name(bind)}


def _split_netloc(netloc: str) -> tuple[str, int | None] | None:
    """(hostname, port or None) of a bare "host[:port]"; None if it is anything more or less."""
    try:
        parts = urllib.parse.urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return parts.hostname.lower(), port


def host_allowed(host: str | None, allowed_hosts: Collection[str], port: int | None) -> bool:
    """Whether a Host header names this server: an allowed name, and our port if it has one.

    A missing Host is refused. An allowed wildcard address (0.0.0.0, ::) admits every IP
    literal: a rebinding page always sends its own DNS name, never an IP address, because a
    browser only sends Host: 192.0.2.7 to 192.0.2.7 itself.
    """
    parsed = _split_netloc(host) if host else None
    if parsed is None:
        return False
    name, given_port = parsed
    if given_port is not None and given_port != port:
        return False
    return name in allowed_hosts or (_is_ip(name) is not None and not WILDCARD_HOSTS.isdisjoint(allowed_hosts))


def same_origin(origin: str, host: str, scheme: str = "http") -> bool:
    """Whether an Origin header is exactly `scheme`://`host` (the request's Host header).

    Scheme, name and port must all match, a missing port standing for the scheme's default.
    "null" (sandboxed frames, file: pages) and anything unparsable count as foreign.
    """
    try:
        parsed = urllib.parse.urlsplit(origin)
    except ValueError:
        return False
    if parsed.scheme != scheme or scheme not in _DEFAULT_PORTS or parsed.path:
        return False
    theirs, ours = _split_netloc(parsed.netloc), _split_netloc(host)
    if theirs is None or ours is None:
        return False
    default = _DEFAULT_PORTS[scheme]
    return (theirs[0], theirs[1] or default) == (ours[0], ours[1] or default)


def refusal(
    method: str,
    host: str | None,
    origin: str | None,
    *,
    allowed_hosts: Collection[str],
    port: int | None,
    scheme: str = "http",
) -> str | None:
    """Why a request must get a 403, or None: a foreign Host, or a foreign Origin on a write.

    Writes without an Origin pass (curl, scripts): browsers always send Origin on cross-origin
    POST/DELETE, which is what that part guards against. Reads are not checked for Origin:
    without CORS headers another site's page cannot read the reply.
    """
    if not host_allowed(host, allowed_hosts, port):
        return (
            f"Host {host!r} refused: this server answers to {', '.join(sorted(allowed_hosts))} "
            f"on port {port} only (DNS rebinding guard)"
        )
    if method not in SAFE_METHODS and origin is not None and not same_origin(origin, host or "", scheme):
        return f"cross-origin {method} refused: Origin {origin!r} is not {scheme}://{host}"
    return None


def given_token(
    token: str | None = None, token_file: Path | None = None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The token asked for: --token, else the one in --token-file (a file only its owner may
    read, see gates.secret_file), else $DATASET_GATES_TOKEN; None when none is.

    ValueError for both --token and --token-file, or a token file that is refused.
    """
    if token is not None and token_file is not None:
        raise ValueError("give --token or --token-file, not both")
    if token_file is not None:
        return read_secret(token_file)
    return token if token is not None else (environ.get(TOKEN_ENV) or None)


def choose_token(host: str, token: str | None = None, no_auth: bool = False) -> str | None:
    """The token `serve` requires: the one given, a fresh one for a non-loopback bind, or None.

    Raises ValueError for a token that is too short or not URL safe, or for a token
    together with no_auth.
    """
    if token is not None:
        if no_auth:
            raise ValueError("--token and --no-auth contradict each other")
        if not _TOKEN_RULE.fullmatch(token):
            raise ValueError("a --token must be 16 or more of the characters A-Z a-z 0-9 _ -")
        return token
    if no_auth or is_loopback(host):
        return None
    return secrets.token_urlsafe(24)


def bind_warnings(host: str, port: int, token: str | None) -> list[str]:
    """What `serve` prints to stderr before listening on `host`: nothing on loopback."""
    if is_loopback(host):
        return []
    exposed = (
        f"warning: {host or '*'} is not a loopback address: other machines that can "
        f"reach port {port} can reach the slot browser."
    )
    if token is None:
        return [
            exposed,
            (
                f"warning: --no-auth: anyone who can reach port {port} can list, "
                f"download, rename and delete slots and change the quota."
            ),
        ]
    return [
        exposed,
        (
            f"Every request needs the token: open the URL printed below (the page keeps "
            f"the token for this tab) or send the {TOKEN_HEADER} header."
        ),
    ]


def _served_port(request: web.Request) -> int | None:
    """The local port the request came in on (the served port, even when bound to port 0)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def _same_secret(given: str | None, token: str) -> bool:
    """Constant-time comparison; header text may hold any byte, so compare bytes."""
    return given is not None and secrets.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _public(request: web.Request) -> bool:
    """The page and its scripts: the pack's own files, the same for everyone, holding no slot
    data. Served without the token, so the page can read it from the URL's fragment."""
    return request.method in SAFE_METHODS and (request.path == "/" or request.path.startswith("/web/"))


def _token_of(request: web.Request) -> str | None:
    """The token a request carries: the header, or on a read the query parameter."""
    given = request.headers.get(TOKEN_HEADER)
    if given is None and request.method in SAFE_METHODS:
        given = request.query.get(TOKEN_QUERY)
    return given


def guard(allowed_hosts: Collection[str], token: str | None = None) -> Middleware:
    """The middleware that runs `refusal` (403) and, with a token, the token check (401)."""
    names = frozenset(map(_host_name, allowed_hosts))

    @web.middleware
    async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        port = _served_port(request)
        why = refusal(
            request.method,
            request.headers.get("Host"),
            request.headers.get("Origin"),
            allowed_hosts=names,
            port=port,
            scheme=request.scheme,
        )
        if why:
            return _error(403, why)
        if token is None or _public(request):
            return await handler(request)
        if not _same_secret(_token_of(request), token):
            return _error(
                401,
                f"token required: open the URL `gates serve` printed (/#token=...) or send the {TOKEN_HEADER} header",
            )
        return await handler(request)

    return guard_middleware


def _page_html() -> str:
    """index.html with a <base> so its relative links resolve under /web/browser/."""
    return PAGE.read_text(encoding="utf-8").replace("<head>", '<head>\n  <base href="/web/browser/">', 1)


async def _index(request: web.Request) -> web.Response:
    return web.Response(text=_page_html(), content_type="text/html", headers={"Cache-Control": "no-cache"})


def make_app(
    store: BusAdmin, *, allowed_hosts: Collection[str] = LOOPBACK_HOSTS, token: str | None = None
) -> web.Application:
    """The browser app on one slot store: API at /datasete_gate, files at /web/, page at /.

    allowed_hosts: the Host names it answers to (allowed_hosts_for(bind) for a server bound
    elsewhere than loopback); token: required on every request when given (see guard).
    """
    if not PAGE.is_file():
        raise FileNotFoundError(f"the slot browser page is missing: {PAGE} (web/ must ship next to the gates package)")
    app = web.Application(middlewares=[guard(allowed_hosts, token)])
    routes = web.RouteTableDef()
    GateRoutes(store, Waiter(), queue_prompt=None).add_to(routes)  # no queue: resume is 501
    app.add_routes(routes)
    app.router.add_get("/", _index)
    app.router.add_static("/web/", WEB_DIR, follow_symlinks=False)
    return app


async def _serve_until(
    runner: web.AppRunner, host: str, port: int, stop: asyncio.Event, started: Callable[[], None]
) -> None:
    """Listen on host:port, call `started`, serve until `stop` is set, then close every socket."""
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        started()
        await stop.wait()
    finally:
        await runner.cleanup()


async def _run(
    store: BusAdmin, host: str, port: int, stop: asyncio.Event | None = None, token: str | None = None
) -> None:
    """Listen, say where (with the token, the only place it is printed), and wait for `stop`
    (forever by default: Ctrl-C ends it)."""
    app = make_app(store, allowed_hosts=allowed_hosts_for(host), token=token)
    runner = web.AppRunner(app, handle_signals=False)
    # In the fragment: browsers never send it, so it reaches no log and no Referer.
    query = "" if token is None else "#" + urllib.parse.urlencode({"token": token})

    def say_where() -> None:
        for address in runner.addresses:
            shown_host, shown_port = address[0], address[1]
            if ":" in shown_host:
                shown_host = f"[{shown_host}]"
            print(f"Dataset Gates slot browser: http://{shown_host}:{shown_port}/{query}", flush=True)
        print(f"bus: {store.location}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    await _serve_until(runner, host, port, stop or asyncio.Event(), say_where)


def serve(
    store: BusAdmin, host: str = "127.0.0.1", port: int = 8189, *, token: str | None = None, no_auth: bool = False
) -> None:
    """Serve the browser until Ctrl-C; beyond loopback, behind a token unless no_auth.

    A port already in use raises OSError; a bad token (see choose_token) ValueError.
    """
    token = choose_token(host, token, no_auth)
    for line in bind_warnings(host, port, token):
        print(line, file=sys.stderr, flush=True)
    try:
        asyncio.run(_run(store, host, port, token=token))
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
            await _serve_until(runner, host, port, holder["stop"], lambda: started.put(runner.addresses[0][1]))
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
