"""docs/http.md is a promise: it documents every route GateRoutes registers, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from gates.bus.local.store import SlotStore
from gates.gate.waiter import Waiter
from gates.http.guard import _STATUS
from gates.http.routes import PREFIX, GateRoutes

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "http.md").read_text(encoding="utf-8")


class _Table:
    """Records what GateRoutes.add_to registers, as an aiohttp RouteTableDef would get it."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str]] = []

    def route(self, method: str, path: str):
        self.routes.append((method, path))
        return lambda handler: handler


def registered(tmp_path: Path) -> list[tuple[str, str]]:
    table = _Table()
    GateRoutes(SlotStore(tmp_path), Waiter()).add_to(table)
    return table.routes


def test_every_route_is_documented_once_and_nothing_else_is(tmp_path: Path) -> None:
    routes = registered(tmp_path)
    assert len(routes) >= 19
    documented = re.findall(r"^### `([A-Z]+) (/\S+?)(?:\?\S*)?`$", DOC, re.M)
    assert sorted(documented) == sorted(routes)
    assert all(path.startswith(PREFIX + "/") for _, path in routes)


def test_every_status_code_the_routes_give_is_in_the_table() -> None:
    table = DOC[DOC.index("| status | when |") : DOC.index("A slot in JSON")]
    listed = {int(code) for code in re.findall(r"^\| `(\d{3})` \|", table, re.M)}
    source = "".join(p.read_text(encoding="utf-8") for p in (REPO / "gates" / "http").glob("*.py"))
    given = {code for _, code in _STATUS} | {200, 413, 501, 503}
    assert "HTTPRequestEntityTooLarge" in source and "HTTPServiceUnavailable" in source
    assert "error(501" in source
    assert given <= listed, given - listed


def test_the_doc_names_the_api_mirror_and_the_socket_events() -> None:
    from gates.gate.run import DONE_EVENT, PAUSE_EVENT

    assert f"`{PAUSE_EVENT}`" in DOC and f"`{DONE_EVENT}`" in DOC
    assert "`/api/datasete_gate`" in DOC and PREFIX == "/datasete_gate"
