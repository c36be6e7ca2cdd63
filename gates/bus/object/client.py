"""The few object-store requests the bus makes, with obstore's errors turned into the bus's.

obstore retries 5xx answers, dropped connections and timeouts itself, with exponential
backoff and jitter (`config.s3_store`); what still fails here has failed every retry, and is
reported in one short line: what was being done, the HTTP status or the network error, how
many tries. The raw error (its XML body, request ids, a URL) is never passed on, and what is
kept is scrubbed of every credential, so a message can go to a log, a page or a terminal.

Sizes come from the store and are not trusted: every small object is read with a cap, and a
ranged read that comes back short is damage (`codec.truncated`), never a short buffer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from .. import codec
from ..errors import SlotCorrupt, SlotError, SlotNotFound, SlotUnavailable, SlotWriteError
from .config import Settings, s3_store

if TYPE_CHECKING:
    from obstore.store import S3Store

_STATUS_RE = re.compile(r"status code: (\d{3})( [A-Za-z ]{1,40})?")
_CODE_RE = re.compile(r"<Code>([A-Za-z]{1,60})</Code>")
_RETRIES_RE = re.compile(r"retries: (\d+)")
_NETWORK = (
    ("connection refused", "connection refused"),
    ("connection reset", "connection reset"),
    ("timed out", "timed out"),
    ("operation timed out", "timed out"),
    ("dns error", "host name not found"),
    ("error sending request", "the request could not be sent"),
    ("connection closed", "connection closed"),
    ("incomplete message", "connection closed mid-answer"),
)


class Conflict(Exception):
    """A conditional write lost: the object changed (If-Match) or exists (If-None-Match)."""


@dataclass(frozen=True)
class Got:
    """A small object read whole, with the ETag a conditional write of it names."""

    data: bytes
    etag: str
    unchanged: bool = False  # HTTP 304: the object still has the ETag the caller named


def _reason(text: str) -> str:
    """The one useful part of an obstore error's text: status and S3 code, or the network fault."""
    status, code, retries = _STATUS_RE.search(text), _CODE_RE.search(text), _RETRIES_RE.search(text)
    if status:
        what = f"HTTP {status[1]}{(status[2] or '').rstrip()}" + (f" ({code[1]})" if code else "")
    else:
        low = text.lower()
        what = next((said for needle, said in _NETWORK if needle in low), "the request failed")
    if retries and int(retries[1]):
        what += f" after {int(retries[1]) + 1} tries"
    return what


class Client:
    """One bus's view of its bucket: keys are relative to the bus's prefix."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store: S3Store = s3_store(settings)

    def __repr__(self) -> str:
        return f"Client({self.settings.location!r})"

    # -- errors -------------------------------------------------------------------------------
    def fail(self, exc: BaseException, doing: str, write: bool) -> NoReturn:
        """Raise the bus's error for obstore's `exc` while `doing` (e.g. "read slot 'x'")."""
        text = str(exc)
        if "NoSuchBucket" in text:
            why = f"the bucket {self.settings.bucket!r} does not exist (create it first)"
        elif _is(exc, "PermissionDeniedError", "UnauthenticatedError") or re.search(r"status code: 40[13]", text):
            why = f"access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ({_reason(text)})"
        else:
            why = _reason(text)
        where = f" at {self.settings.endpoint}" if self.settings.endpoint else ""
        message = self.settings.scrub(f"could not {doing} in {self.settings.location}{where}: {why}")
        if write:
            raise SlotWriteError(message + "; nothing was changed") from None
        raise SlotUnavailable(message) from None

    def absent(self, exc: BaseException, doing: str, write: bool = False) -> None:
        """A 404 is an absent object, unless it is the whole bucket that is missing."""
        if "NoSuchBucket" in str(exc):
            self.fail(exc, doing, write)

    # -- requests -------------------------------------------------------------------------------
    def get(self, key: str, cap: int, doing: str, if_none_match: str | None = None) -> Got | None:
        """The whole object (None when absent); SlotCorrupt when larger than `cap` bytes.
        With `if_none_match`, an object that still has that ETag comes back `unchanged`
        and empty (HTTP 304)."""
        import obstore
        from obstore.exceptions import NotModifiedError

        options: dict[str, Any] = {"if_none_match": if_none_match} if if_none_match else {}
        try:
            result = obstore.get(self.store, key, options=options)  # type: ignore[arg-type]
            size = int(result.meta["size"])
            if size > cap:
                raise SlotCorrupt(f"{key} is {size} bytes, more than the {cap} a bus keeps there")
            data = bytes(result.bytes())
        except FileNotFoundError as exc:
            self.absent(exc, doing)
            return None
        except NotModifiedError:
            return Got(b"", if_none_match or "", unchanged=True)
        except SlotError:
            raise
        except Exception as exc:
            self.fail(exc, doing, write=False)
        if len(data) > cap:
            raise SlotCorrupt(f"{key} is longer than the {cap} bytes a bus keeps there")
        return Got(data, str(result.meta.get("e_tag") or ""))

    def get_blob(self, key: str, doing: str) -> tuple[memoryview, str] | None:
        """A version object read whole in one request (None when absent), and its ETag."""
        import obstore

        try:
            result = obstore.get(self.store, key)
            size = int(result.meta["size"])
            data = result.bytes()
        except FileNotFoundError as exc:
            self.absent(exc, doing)
            return None
        except Exception as exc:
            self.fail(exc, doing, write=False)
        view = memoryview(data)
        if len(view) != size:
            raise codec.truncated()
        return view, str(result.meta.get("e_tag") or "")

    def open(self, key: str, chunk: int, doing: str) -> tuple[int, Iterator[memoryview]] | None:
        """A version object in one GET, as its size and its bytes front to back in pieces of at
        least `chunk` bytes (the last shorter); None when absent.

        A load copies each piece straight into the tensors' memory and hashes it there, while
        it is still in cache: one copy, where reading the whole object first (`get_blob`) makes
        two, the first into fresh memory that obstore allocates at 4 KiB pages. The pieces are
        the store's buffers, valid only until the next one is asked for.
        """
        import obstore

        try:
            result = obstore.get(self.store, key)
            size = int(result.meta["size"])
            pieces = result.stream(min_chunk_size=chunk)
        except FileNotFoundError as exc:
            self.absent(exc, doing)
            return None
        except Exception as exc:
            self.fail(exc, doing, write=False)

        def read() -> Iterator[memoryview]:
            try:
                for piece in pieces:
                    yield memoryview(piece)
            except Exception as exc:  # a connection lost mid-object, after obstore's retries
                if isinstance(exc, FileNotFoundError):
                    self.absent(exc, doing)
                    raise SlotNotFound(f"{doing}: the version was removed meanwhile") from None
                self.fail(exc, doing, write=False)

        return size, read()

    def head(self, key: str, doing: str) -> dict[str, Any] | None:
        """The object's size, ETag and time (None when absent)."""
        import obstore

        try:
            return dict(obstore.head(self.store, key))
        except FileNotFoundError as exc:
            self.absent(exc, doing)
            return None
        except Exception as exc:
            self.fail(exc, doing, write=False)

    def start(self, key: str, length: int, doing: str) -> tuple[bytes, int, str] | None:
        """The first `length` bytes (fewer when the object is shorter), the object's size and
        its ETag, in one request: what a header read starts with. None when absent."""
        import obstore

        try:
            result = obstore.get(self.store, key, options={"range": (0, length)})
            size = int(result.meta["size"])
            data = bytes(result.bytes())
        except FileNotFoundError as exc:
            self.absent(exc, doing)
            return None
        except Exception as exc:
            if "416" in str(exc):  # an empty object has no byte 0: a file that ends early
                raise codec.truncated() from None
            self.fail(exc, doing, write=False)
        if len(data) != min(length, size):
            raise codec.truncated()
        return data, size, str(result.meta.get("e_tag") or "")

    def read_into(self, key: str, doing: str) -> Callable[[int, memoryview], None]:
        """`read_into(offset, buffer)` by ranged GETs: exactly len(buffer) bytes or damage."""
        import obstore

        def read_into(offset: int, out: memoryview) -> None:
            if not len(out):
                return
            try:
                data = obstore.get_range(self.store, key, start=offset, length=len(out))
            except FileNotFoundError as exc:
                self.absent(exc, doing)
                raise SlotNotFound(f"{doing}: the version was removed meanwhile") from None
            except Exception as exc:
                self.fail(exc, doing, write=False)
            if len(data) != len(out):
                raise codec.truncated()
            out[:] = memoryview(data)

        return read_into

    def stream(self, key: str, etag: str, chunk: int, doing: str) -> Iterator[bytes]:
        """The object front to back in pieces of at least `chunk` bytes (the last shorter),
        only while its ETag is still `etag`."""
        import obstore

        try:
            result = obstore.get(self.store, key, options={"if_match": etag} if etag else {})
            for piece in result.stream(min_chunk_size=chunk):
                yield bytes(piece)
        except FileNotFoundError as exc:
            self.absent(exc, doing)
            raise SlotNotFound(f"{doing}: the version was removed meanwhile") from None
        except Exception as exc:
            self.fail(exc, doing, write=False)

    def put(
        self, key: str, data: bytes | memoryview | list[bytes | memoryview], doing: str, mode: Any = "overwrite"
    ) -> str:
        """Write `data` whole (atomic: visible all at once or not at all); returns its ETag.

        `data` may be a list of parts (1-D uint8 buffers), sent back to back as one object
        without being joined first. `mode`: "overwrite", "create" (If-None-Match: *) or
        {"e_tag": ...} (If-Match); a lost condition is Conflict.
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        size = sum(len(part) for part in data) if isinstance(data, list) else len(data)
        big = size > (1 << 30)  # one PUT up to 1 GiB; S3's single-PUT limit is 5 GiB
        try:
            result = obstore.put(self.store, key, data, mode=mode, use_multipart=big, chunk_size=64 << 20)
        except (AlreadyExistsError, PreconditionError):
            raise Conflict(key) from None
        except FileNotFoundError as exc:
            if mode not in ("overwrite", "create"):  # If-Match on an object deleted meanwhile
                raise Conflict(key) from None
            self.fail(exc, doing, write=True)
        except Exception as exc:
            self.fail(exc, doing, write=True)
        return str(result.get("e_tag") or "")

    def delete(self, keys: list[str], doing: str) -> None:
        """Remove `keys`; an absent one is no error."""
        import obstore

        if not keys:
            return
        try:
            obstore.delete(self.store, keys)
        except FileNotFoundError as exc:
            self.absent(exc, doing, write=True)
        except Exception as exc:
            self.fail(exc, doing, write=True)

    def listing(self, prefix: str, doing: str) -> Iterator[dict[str, Any]]:
        """Every object under `prefix` (path relative to the bus, size, e_tag, last_modified)."""
        import obstore

        try:
            for batch in obstore.list(self.store, prefix, chunk_size=1000):
                yield from (dict(meta) for meta in batch)
        except Exception as exc:
            self.fail(exc, doing, write=False)


def _is(exc: BaseException, *names: str) -> bool:
    return any(cls.__name__ in names for cls in type(exc).__mro__)
