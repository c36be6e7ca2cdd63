"""`gates serve` against DNS rebinding, cross-origin writes and other machines.

The rule tests call the pure functions in gates/browser.py. The process tests start a real
`python -m gates serve` and attack it over 127.0.0.1 with raw HTTP, setting Host and Origin
by hand as a rebinding page's browser would: its own DNS name, now resolving to us.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from gates.bus.local.store import SlotStore
from gates.http.app import (
    LOOPBACK_HOSTS,
    allowed_hosts_for,
    bind_warnings,
    choose_token,
    host_allowed,
    is_loopback,
    make_app,
    refusal,
    serving,
)

REPO = Path(__file__).resolve().parent.parent
P = 8189
WILDCARD = allowed_hosts_for("0.0.0.0")


# -- the host and origin rule ------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, host, origin, allowed",
    [
        ("POST", f"evil.example:{P}", f"http://evil.example:{P}", False),  # DNS rebinding write
        ("GET", f"evil.example:{P}", None, False),  # DNS rebinding read
        ("GET", f"127.0.0.1.evil.example:{P}", None, False),
        ("GET", f"localhost.:{P}", None, False),
        ("GET", f"localhost:{P}", None, True),
        ("GET", f"LOCALHOST:{P}", None, True),
        ("GET", f"127.0.0.1:{P}", None, True),
        ("GET", "127.0.0.1", None, True),  # no port: not checked
        ("GET", f"127.0.0.1:{P + 1}", None, False),  # another port
        ("GET", f"[::1]:{P}", None, True),
        ("POST", f"[::1]:{P}", f"http://[::1]:{P}", True),
        ("GET", f"192.168.1.5:{P}", None, False),  # not bound there
        ("GET", None, None, False),  # no Host
        ("GET", "", None, False),
        ("GET", f"127.0.0.1:{P}@evil.example", None, False),
        ("GET", f"127.0.0.1:{P}/x", None, False),
        ("GET", f"127.0.0.1:{P}", "http://evil.example", True),  # reads: Origin not checked
        ("POST", f"127.0.0.1:{P}", None, True),  # curl, scripts
        ("POST", f"127.0.0.1:{P}", f"http://127.0.0.1:{P}", True),
        ("POST", f"localhost:{P}", f"http://localhost:{P}", True),
        ("POST", f"127.0.0.1:{P}", f"http://localhost:{P}", False),
        ("POST", f"127.0.0.1:{P}", f"https://127.0.0.1:{P}", False),  # scheme differs
        ("POST", f"127.0.0.1:{P}", "null", False),
        ("DELETE", f"127.0.0.1:{P}", "http://evil.example", False),
        ("DELETE", f"127.0.0.1:{P}", f"http://127.0.0.1:{P}/", False),  # not an origin
        ("POST", f"127.0.0.1:{P}", f"http://127.0.0.1:{P + 1}", False),
    ],
)
def test_refusal_rule(method: str, host: str | None, origin: str | None, allowed: bool) -> None:
    why = refusal(method, host, origin, allowed_hosts=LOOPBACK_HOSTS, port=P)
    assert (why is None) is allowed, why


def test_a_wildcard_bind_admits_ip_literals_but_no_other_name() -> None:
    """0.0.0.0 stands for every address of the machine; a rebinding page sends a DNS name."""
    assert LOOPBACK_HOSTS | {"0.0.0.0"} == WILDCARD
    for host in (f"192.168.1.5:{P}", f"10.0.0.1:{P}", f"[fe80::1]:{P}", f"0.0.0.0:{P}", f"localhost:{P}"):
        assert host_allowed(host, WILDCARD, P), host
    for host in (f"evil.example:{P}", f"{socket.gethostname()}:{P}", f"192.168.1.5:{P + 1}"):
        assert not host_allowed(host, WILDCARD, P), host


def test_a_named_bind_admits_that_name() -> None:
    allowed = allowed_hosts_for("MyBox.lan")
    assert host_allowed(f"mybox.lan:{P}", allowed, P) and host_allowed(f"[::1]:{P}", allowed, P)
    assert not host_allowed(f"other.lan:{P}", allowed, P)
    assert host_allowed(f"[::1]:{P}", allowed_hosts_for("[::1]"), P)


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("mybox.lan", False),
        ("localhost.evil.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_choose_token() -> None:
    assert choose_token("127.0.0.1") is None and choose_token("localhost") is None
    fresh = choose_token("0.0.0.0")
    assert fresh and re.fullmatch(r"[A-Za-z0-9_-]{32}", fresh) and fresh != choose_token("0.0.0.0")
    assert choose_token("0.0.0.0", no_auth=True) is None
    assert choose_token("127.0.0.1", "k" * 16) == "k" * 16  # a given token applies on loopback too
    with pytest.raises(ValueError, match="16 or more"):
        choose_token("0.0.0.0", "short")
    with pytest.raises(ValueError, match="16 or more"):
        choose_token("0.0.0.0", "x" * 20 + ";")
    with pytest.raises(ValueError, match="contradict"):
        choose_token("0.0.0.0", "k" * 16, no_auth=True)


def test_bind_warnings() -> None:
    assert bind_warnings("127.0.0.1", P, None) == [] and bind_warnings("localhost", P, "k" * 16) == []
    with_token = "\n".join(bind_warnings("0.0.0.0", P, "k" * 16))
    assert "not a loopback address" in with_token and "X-Dataset-Gates-Token" in with_token
    assert "k" * 16 not in with_token  # the token is printed once, in the URL line
    no_auth = "\n".join(bind_warnings("0.0.0.0", P, None))
    assert "--no-auth" in no_auth and "delete slots" in no_auth


# -- raw HTTP against a live server --------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def send(
    port: int, method: str, path: str, host: str | None, headers: dict[str, str] | None = None, body: dict | None = None
) -> Reply:
    """One request to 127.0.0.1:port with exactly this Host header (None: none at all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        data = json.dumps(body).encode() if body is not None else b""
        sent = {**({"Host": host} if host is not None else {}), **(headers or {}), "Content-Length": str(len(data))}
        if body is not None:
            sent["Content-Type"] = "application/json"
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(data)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def raw_status(port: int, request: str) -> int:
    """The status code of a request sent byte for byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        head = conn.recv(64).decode("latin-1")
    return int(head.split()[1])


def free_port(bind: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((bind, 0))
        return s.getsockname()[1]


@dataclass
class Served:
    port: int
    url: str  # the URL line it printed
    stderr: str  # what it printed to stderr before listening
    store: SlotStore
    pid: int

    def send(self, method: str, path: str, host: str | None = "127.0.0.1", **kwargs) -> Reply:
        """`host` without a port gets the served one."""
        if host is not None and ":" not in host:
            host = f"{host}:{self.port}"
        return send(self.port, method, path, host, **kwargs)


@contextmanager
def gates_serve(
    bus: Path, *options: str, bind: str = "127.0.0.1", env: dict[str, str] | None = None
) -> Iterator[Served]:
    """`python -m gates serve --bus bus --port <free> *options`, until its URL line; killed after."""
    port = free_port(bind)
    lines: queue.Queue[str | None] = queue.Queue()
    with open(bus.parent / "serve.err", "w+", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gates", "serve", "--bus", str(bus), "--port", str(port), *options],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        reader = threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True)
        reader.start()
        try:
            deadline, url = time.monotonic() + 60, None
            while url is None:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None or time.monotonic() > deadline:
                    err.seek(0)
                    pytest.fail(f"gates serve printed no URL (exit {proc.poll()}): {err.read()}")
                if "slot browser: http://" in line:
                    url = line.split("slot browser: ", 1)[1].strip()
            err.seek(0)
            yield Served(port, url, err.read(), SlotStore(bus), proc.pid)
        finally:
            proc.kill()
            proc.wait(10)
            reader.join(10)


@pytest.fixture
def bus(tmp_path: Path) -> Path:
    store = SlotStore(tmp_path / "bus")
    store.publish("a", torch.rand(1, 8, 8, 3))
    store.publish("b", torch.rand(1, 8, 8, 3))
    return store.root


LIST = "/datasete_gate/bus/list"
POLICY = "/datasete_gate/bus/policy"


def slot_ids(store: SlotStore) -> set[str]:
    return {info.id for info in store.list()}


def test_loopback_serve_refuses_dns_rebinding_and_foreign_origins(bus: Path) -> None:
    with gates_serve(bus) as served:
        assert served.url == f"http://127.0.0.1:{served.port}/" and served.stderr == ""
        evil = f"http://evil.example:{served.port}"
        # The rebinding page empties the bus with a 1-byte quota, from "its own" origin.
        reply = served.send("POST", POLICY, "evil.example", headers={"Origin": evil}, body={"quota_bytes": 1})
        assert reply.status == 403 and "DNS rebinding" in reply.json()["error"]
        reply = served.send("DELETE", "/datasete_gate/bus/a", "evil.example", headers={"Origin": evil})
        assert reply.status == 403
        for path in (LIST, "/datasete_gate/bus/tensors/a", "/datasete_gate/bus/thumb/a", "/"):
            reply = served.send("GET", path, "evil.example")
            assert reply.status == 403 and b'"a"' not in reply.body, path
        assert served.send("GET", LIST, f"127.0.0.1:{served.port + 1}").status == 403
        # No Host at all: aiohttp refuses it in HTTP/1.1 (400), the guard in HTTP/1.0 (403).
        assert served.send("GET", LIST, host=None).status == 400
        assert raw_status(served.port, f"GET {LIST} HTTP/1.0\r\n\r\n") == 403
        # The right Host, but another site's page: a classic cross-origin write.
        reply = served.send("DELETE", "/datasete_gate/bus/a", headers={"Origin": "http://evil.example"})
        assert reply.status == 403 and "cross-origin" in reply.json()["error"]
        reply = served.send(
            "POST", POLICY, headers={"Origin": f"https://127.0.0.1:{served.port}"}, body={"quota_bytes": 1}
        )
        assert reply.status == 403
        assert slot_ids(served.store) == {"a", "b"} and served.store.policy().quota_bytes is None
        # The page's own requests, and the other loopback names, still work without a token.
        reply = served.send("GET", LIST)
        assert reply.status == 200 and {s["id"] for s in reply.json()["slots"]} == {"a", "b"}
        for host in ("localhost", f"[::1]:{served.port}"):
            assert served.send("GET", LIST, host).status == 200, host
        origin = f"http://127.0.0.1:{served.port}"
        assert (
            served.send("POST", "/datasete_gate/bus/a/pin", headers={"Origin": origin}, body={"pinned": True}).status
            == 200
        )
        assert served.store.info("a").pinned
        assert served.send("DELETE", "/datasete_gate/bus/b", headers={"Origin": origin}).status == 200
        assert slot_ids(served.store) == {"a"}


def token_of(url: str) -> str:
    match = re.fullmatch(r"http://0\.0\.0\.0:\d+/#token=([A-Za-z0-9_-]+)", url)
    assert match, url
    return match.group(1)


def test_wildcard_serve_needs_the_printed_token(bus: Path) -> None:
    with gates_serve(bus, "--host", "0.0.0.0", bind="0.0.0.0") as served:
        assert "warning: 0.0.0.0 is not a loopback address" in served.stderr
        token = token_of(served.url)
        assert token not in served.stderr
        header = {"X-Dataset-Gates-Token": token}
        for path in (LIST, "/datasete_gate/bus/tensors/a", "/datasete_gate/bus/thumb/a", "/?token=" + token):
            reply = served.send("GET", path)
            if path.startswith("/?"):  # the page is public (see below); the old login URL sets nothing
                assert reply.status == 200 and "Set-Cookie" not in reply.headers
                continue
            assert reply.status == 401 and "token required" in reply.json()["error"], path
        reply = served.send("POST", POLICY, body={"quota_bytes": 1})
        assert reply.status == 401
        assert served.send("GET", LIST, headers={"X-Dataset-Gates-Token": token[:-1] + "x"}).status == 401
        assert served.send("GET", LIST, headers=header).status == 200
        # Another machine's browser sends this machine's IP address as Host: fine with the token.
        assert served.send("GET", LIST, "192.0.2.7", headers=header).status == 200
        # A rebinding page could not have the token, and its Host is refused before that anyway.
        assert served.send("GET", LIST, "evil.example", headers=header).status == 403
        origin = {"Origin": f"http://127.0.0.1:{served.port}"}
        reply = served.send("DELETE", "/datasete_gate/bus/b", headers={**header, **origin})
        assert reply.status == 200 and slot_ids(served.store) == {"a"}


def test_the_token_is_never_a_cookie_that_other_ports_would_get(bus: Path) -> None:
    """Cookies ignore ports: a token in one would reach every service on the host. The page
    and its scripts are public files; the data needs the token, as a header, or as a query
    parameter on reads only (what <img> and a download link can carry)."""
    with gates_serve(bus, "--host", "0.0.0.0", bind="0.0.0.0") as served:
        token = token_of(served.url)
        for path in ("/", "/web/browser/slot_browser.js", "/web/http.js"):
            reply = served.send("GET", path)
            assert reply.status == 200 and "Set-Cookie" not in reply.headers, path
        assert token.encode() not in served.send("GET", "/").body
        old_cookies = {"Cookie": f"dataset_gates_token_{served.port}={token}; dataset_gates_token={token}"}
        assert served.send("GET", LIST, headers=old_cookies).status == 401
        query = f"dataset_gates_token={token}"
        thumb = served.send("GET", f"/datasete_gate/bus/thumb/a?v=1&{query}")
        assert thumb.status == 200 and thumb.body.startswith(b"\x89PNG") and "Set-Cookie" not in thumb.headers
        assert served.send("GET", f"/datasete_gate/bus/tensors/a?{query}").status == 200
        assert served.send("GET", f"{LIST}?dataset_gates_token={token[:-1]}x").status == 401
        # A write must send the header: a URL is too easily replayed or leaked.
        assert served.send("DELETE", f"/datasete_gate/bus/b?{query}").status == 401
        assert served.send("POST", f"{POLICY}?{query}", body={"quota_bytes": 1}).status == 401
        assert slot_ids(served.store) == {"a", "b"} and served.store.policy().quota_bytes is None


def proc_cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_a_token_from_the_environment_or_a_file_is_not_in_the_process_list(bus: Path, tmp_path: Path) -> None:
    token = "from-the-environment-0123"
    with gates_serve(bus, env={"DATASET_GATES_TOKEN": token}) as served:
        assert token.encode() not in proc_cmdline(served.pid)
        assert served.url.endswith(f"/#token={token}")
        assert served.send("GET", LIST).status == 401
        assert served.send("GET", LIST, headers={"X-Dataset-Gates-Token": token}).status == 200
    secret = tmp_path / "token"
    secret.write_text("from-a-file-0123456789\n")
    secret.chmod(0o600)
    with gates_serve(bus, "--token-file", str(secret), env={"DATASET_GATES_TOKEN": token}) as served:
        assert b"from-a-file" not in proc_cmdline(served.pid)
        assert served.send("GET", LIST, headers={"X-Dataset-Gates-Token": "from-a-file-0123456789"}).status == 200
        assert served.send("GET", LIST, headers={"X-Dataset-Gates-Token": token}).status == 401  # the file wins


@pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX")
def test_a_token_file_others_can_read_is_refused(bus: Path, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("readable-by-all-0123456789\n")
    secret.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "gates", "serve", "--bus", str(bus), "--token-file", str(secret)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "chmod 600" in result.stderr and "Traceback" not in result.stderr
    assert "readable-by-all" not in result.stderr + result.stdout
    both = subprocess.run(
        [sys.executable, "-m", "gates", "serve", "--bus", str(bus), "--token-file", str(secret), "--token", "x" * 16],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 1 and "not both" in both.stderr


def test_no_auth_warns_and_needs_no_token(bus: Path) -> None:
    with gates_serve(bus, "--host", "0.0.0.0", "--no-auth", bind="0.0.0.0") as served:
        assert "not a loopback address" in served.stderr
        assert "--no-auth: anyone who can reach port" in served.stderr
        assert served.url == f"http://0.0.0.0:{served.port}/"
        assert served.send("GET", LIST).status == 200
        assert served.send("GET", LIST, "evil.example").status == 403  # still no rebinding


def test_a_given_token_is_required_even_on_loopback(bus: Path) -> None:
    token = "scripted-token-0123456789"
    with gates_serve(bus, "--token", token) as served:
        assert served.url == f"http://127.0.0.1:{served.port}/#token={token}"
        assert served.send("GET", LIST).status == 401
        assert served.send("GET", LIST, headers={"X-Dataset-Gates-Token": token}).status == 200


def test_host_localhost_answers_to_localhost(bus: Path) -> None:
    with gates_serve(bus, "--host", "localhost") as served:
        assert served.stderr == "" and "token=" not in served.url
        assert served.send("GET", LIST, "localhost").status == 200
        assert served.send("GET", LIST, "evil.example").status == 403


# -- a real browser ----------------------------------------------------------------------------
def test_printed_url_opens_the_page_and_no_other_port_gets_the_token(bus: Path) -> None:
    """The printed URL, clicked in a page on another site, opens the browser; the token then
    reaches no other service on the host: cookies ignore ports, so it is in none (a service on
    another port of 127.0.0.1 gets nothing), and Back leaves the page (no login loop)."""
    from test_browser_page import CHROMIUM, CHROMIUM_ARGS, no_browser

    if not os.path.exists(CHROMIUM):
        no_browser(f"{CHROMIUM} not found (apt-get install chromium); this test needs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("the `playwright` Python package is not installed; this test needs it")
    from aiohttp import web

    token = "k" * 24
    with serving(make_app(SlotStore(bus), token=token)) as (host, port):
        target = f"http://{host}:{port}/#token={token}"
        mail, neighbour, seen = web.Application(), web.Application(), []

        async def message(request: web.Request) -> web.Response:
            return web.Response(text=f'<a id="go" href="{target}">slots</a>', content_type="text/html")

        async def record(request: web.Request) -> web.Response:
            seen.append(dict(request.headers))
            return web.Response(text="another service")

        mail.router.add_get("/", message)
        neighbour.router.add_get("/", record)
        with (
            serving(mail, host="localhost") as (_, mail_port),
            serving(neighbour, host=host) as (_, neighbour_port),
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"http://localhost:{mail_port}/")
                page.click("#go")
                page.wait_for_selector(".dg-card[data-slot-id='a'] img.dg-thumb", timeout=20_000)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('img.dg-thumb')].every((i) => i.complete && i.naturalWidth)"
                )
                assert page.url == f"http://{host}:{port}/"  # the token left the address bar
                assert page.context.cookies() == []
                page.goto(f"http://{host}:{neighbour_port}/")
                assert seen and all(token not in str(headers) for headers in seen), seen
                page.go_back()
                page.wait_for_selector(".dg-card[data-slot-id='a']", timeout=20_000)  # the tab kept it
                page.go_back()
                page.wait_for_url(f"http://localhost:{mail_port}/")  # no Back loop to the login
            finally:
                browser.close()
