"""`gates`: list, inspect, export, import and tidy bus slots from a shell, without ComfyUI.

Run as `python -m gates` or through the `gates` console script. Every user mistake (bad id,
missing or damaged slot, unreadable file) ends as one `gates: error: ...` line on stderr and
exit status 1; argparse's own usage errors keep status 2. stdout carries only the result, so
`--json` output can be piped straight into other tools.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .bus import BusAdmin, SlotError, SlotInfo, SlotNotFound, json_limits, open_bus
from .bus.ids import validate_id
from .bus.location import scheme_of
from .bus.policy import parse_size

if TYPE_CHECKING:  # torch, numpy and Pillow load in the commands that make tensors (start-up)
    import torch

BUS_ENV = "DATASET_GATES_BUS"
LS_HEADER = ["id", "batch", "HxW", "channels", "dtype", "mask", "latent", "size", "created", "versions", "pinned"]


def default_bus_dir() -> Path | str:
    """The bus used when `--bus` is not given.

    Order: `$DATASET_GATES_BUS` (a folder, or a location such as `s3://bucket/prefix`); else,
    when this pack sits in `<ComfyUI>/custom_nodes/<pack>/`,
    `<ComfyUI>/input/gate_bus`, the folder the nodes use, so the CLI sees the same slots as a
    running ComfyUI (one started with a custom `--input-directory` needs `--bus` or the env
    var); else `$XDG_DATA_HOME/dataset-gates/gate_bus` (~/.local/share/...), a per-user place
    that is never the current directory. The ComfyUI check uses the path as imported, not
    resolved, so a pack symlinked into custom_nodes is still recognised.
    """
    env = os.environ.get(BUS_ENV)
    if env:
        return env if scheme_of(env) else Path(env).expanduser()
    comfy = Path(os.path.abspath(__file__)).parents[2]
    if comfy.name == "custom_nodes":
        comfy = comfy.parent
        if (comfy / "main.py").is_file() and (comfy / "input").is_dir():
            return comfy / "input" / "gate_bus"
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "dataset-gates" / "gate_bus"


# -- small helpers ---------------------------------------------------------------------------
def _error_message(exc: BaseException) -> str:
    """One readable line; OSError's default str() ('[Errno 2] ...') reads like a crash."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Left-aligned columns; the last column is not padded so long errors do not widen rows."""
    rows = ([header] if header else []) + rows
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _note(message: str) -> None:
    print(f"gates: note: {message}", file=sys.stderr)


def _print_json(data: Any) -> None:
    print(json_limits.dumps(data, indent=2, default=str))


def _slot_row(s: SlotInfo) -> list[str]:
    if s.error:
        return [s.id] + ["-"] * (len(LS_HEADER) - 2) + [f"ERROR: {s.error}"]
    _, h, w, c = s.image_shape
    return [
        s.ref,
        str(s.batch),
        f"{h}x{w}",
        str(c),
        s.image_dtype,
        "yes" if s.mask_shape else "no",
        "x".join(map(str, s.latent_shape)) if s.latent_shape else "no",
        _human(s.bytes),
        _when(s.created),
        str(s.versions),
        "yes" if s.pinned else "no",
    ]


def _refuse_existing(store: BusAdmin, slot_id: str, force: bool) -> None:
    """Replacing a slot loses its tensors for good, so it takes an explicit --force."""
    if not force and store.exists(slot_id):
        raise FileExistsError(f"slot {slot_id!r} already exists in {store.name}; use --force to replace it")


def _read_all(paths: list[Path], reader: Callable[[Path], torch.Tensor], what: str) -> torch.Tensor:
    """Read files into one batch, naming the first one whose size differs from the first file."""
    import torch

    batch: list[torch.Tensor] = []
    for p in paths:
        try:
            t = reader(p)
        except IsADirectoryError:
            raise ValueError(f"{p}/: a folder, not an image file") from None
        except FileNotFoundError:
            raise ValueError(f"{p}: no such file") from None
        except PermissionError:
            raise ValueError(f"{p}: permission denied") from None
        except ValueError:  # images' own message, naming the file
            raise
        except Exception:  # Pillow raises many types for data it cannot decode
            raise ValueError(f"{p}: the image data is damaged") from None
        if batch and t.shape[1:3] != batch[0].shape[1:3]:
            raise ValueError(
                f"{what} {p} is {t.shape[2]}x{t.shape[1]} but {paths[0]} is "
                f"{batch[0].shape[2]}x{batch[0].shape[1]}: all {what}s must share one size"
            )
        batch.append(t)
    return torch.cat(batch)


# -- commands --------------------------------------------------------------------------------
def cmd_ls(store: BusAdmin, args: argparse.Namespace) -> int:
    print(f"bus: {store.location}", file=sys.stderr)
    slots = store.list()
    if args.json:
        _print_json([s.to_dict() for s in slots])
    elif not slots:
        print(f"no slots in {store.location}")
    else:
        print(_table([_slot_row(s) for s in slots], LS_HEADER))
    return 0


def cmd_info(store: BusAdmin, args: argparse.Namespace) -> int:
    s = store.info(args.id)
    data = s.to_dict()
    data["path"] = store.where(s.id)
    if args.verify:
        with store.verified_stream(args.id):  # the check a download makes: no tensor is built
            data["verified"] = "checksum OK"
    if args.json:
        _print_json(data)
        return 0
    rows = [
        ["id", s.ref],
        ["path", data["path"]],
        ["versions", f"{s.versions} kept" + (f" (this is {s.version})" if s.version else "")],
        ["pinned", "yes" if s.pinned else "no"],
        ["image", f"{s.image_shape} {s.image_dtype}"],
        ["mask", f"{s.mask_shape} {s.mask_dtype}" if s.mask_shape else "none"],
        ["latent", f"{s.latent_shape} {s.latent_dtype}" if s.latent_shape else "none"],
        ["size", f"{_human(s.bytes)} ({s.bytes} bytes)"],
        ["created", _when(s.created)],
        ["checksum", s.checksum or "-"],
        ["thumb", "yes" if s.has_thumb else "-"],
        ["meta", json_limits.dumps(s.meta, default=str)],
    ]
    if args.verify:
        rows.append(["verify", data["verified"]])
    print(_table([[k + ":", v] for k, v in rows]))
    return 0


def is_png_name(out: Path) -> bool:
    """`gates export ID NAME.png` writes one PNG file; any other OUT is a folder."""
    return out.suffix.lower() == ".png"


def _as_opened(path: Path) -> None:
    """Give `path` the mode a file made by open() gets (0666 less the umask), as the PNGs beside
    it have: safetensors writes through a private temp file and leaves its 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def cmd_export(store: BusAdmin, args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from . import images

    s = store.info(args.id)
    out: Path = args.out
    to_file = is_png_name(out)
    if to_file and s.batch != 1:
        raise ValueError(
            f"slot {args.id!r} holds {s.batch} images; a .png name takes a "
            f"one-image slot: give a folder to export a batch"
        )
    image, mask = store.load(args.id, verify=True)
    has_mask = s.mask_shape is not None
    masks: torch.Tensor | list[torch.Tensor] = (mask if mask.ndim == 3 else mask[None]) if has_mask else []
    if to_file:
        # 'out.png' -> out.png (+ out_mask.png); exact tensors, when asked for, beside them
        folder, stem = out.parent, out.stem
        pngs = [(out.name, image[0])]
        if has_mask:
            pngs.append((f"{stem}_mask{out.suffix}", masks[0][:, :, None]))
        tensors_format = args.tensors or "none"
    else:
        folder = out
        stem = args.id.replace("@", "_")  # 'id@-1' -> 'id_-1': '@' upsets some tools
        pngs = [(f"{stem}_{i:04d}.png", picture) for i, picture in enumerate(image)]
        pngs += [(f"{stem}_mask_{i:04d}.png", m[:, :, None]) for i, m in enumerate(masks)]
        tensors_format = args.tensors or "safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, picture in pngs:
        images.write_png(folder / name, picture, args.bits)
        written.append(folder / name)
    tensors = {"image": image} | ({"mask": mask} if has_mask else {})
    if tensors_format == "safetensors":
        path = folder / f"{stem}.safetensors"
        save_file(tensors, path, metadata={"slot": args.id, "checksum": s.checksum or ""})
        _as_opened(path)
        written.append(path)
    elif tensors_format == "npy":
        for name, t in tensors.items():
            if t.dtype == torch.bfloat16:
                # numpy has no bfloat16; float32 holds every bfloat16 value exactly.
                _note(
                    f"{name} is bfloat16, which numpy lacks: saved as float32 (values exact, "
                    f"twice the size); use --tensors safetensors to keep the dtype"
                )
                t = t.float()
            np.save(folder / f"{stem}_{name}.npy", t.numpy())
            written.append(folder / f"{stem}_{name}.npy")
    for p in written:
        print(p)
    return 0


def cmd_import(store: BusAdmin, args: argparse.Namespace) -> int:
    import torch

    from . import images

    _refuse_existing(store, args.id, args.force)
    alphas: list[torch.Tensor | None] = []  # each file's alpha as a mask, as it is read

    def read_image(path: Path) -> torch.Tensor:
        picture, alpha = images.read_image_and_alpha(path)
        alphas.append(alpha)
        return picture

    image = _read_all(args.files, read_image, "image")
    mask, with_mask = None, ""
    if args.mask:
        if len(args.mask) not in (1, len(args.files)):
            raise ValueError(
                f"got {len(args.mask)} mask files for {len(args.files)} images: give one mask for all or one per image"
            )
        mask, with_mask = _read_all(args.mask, images.read_mask, "mask"), ", with mask"
        if any(alpha is not None for alpha in alphas):
            _note("the images' alpha is not used: --mask gives the mask")
    elif any(alpha is not None for alpha in alphas):
        # ComfyUI's LoadImage: the mask is 1 - alpha; an image without alpha masks nothing.
        zeros = torch.zeros(image.shape[:3], dtype=torch.float32)
        mask = torch.cat([zeros[i : i + 1] if alpha is None else alpha for i, alpha in enumerate(alphas)])
        with_mask = ", with mask = 1 - alpha (transparent = masked, as ComfyUI's LoadImage)"
    s = store.publish(args.id, image, mask, meta={"source": "gates import", "files": [str(p) for p in args.files]})
    _, h, w, c = s.image_shape
    print(f"published {s.id!r}: {s.batch} x {h}x{w}x{c} {s.image_dtype}{with_mask} -> {store.where(s.id)}")
    return 0


def cmd_rm(store: BusAdmin, args: argparse.Namespace) -> int:
    if not store.exists(args.id):
        raise SlotNotFound(f"no slot {args.id!r} in {store.name}")
    if not args.yes:
        try:
            answer = input(f"delete slot {args.id!r} from {store.name}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted", file=sys.stderr)
            return 1
    store.delete(args.id)
    print(f"deleted {args.id!r}")
    return 0


def _damage_note(s: SlotInfo) -> str:
    """' (the slot is damaged: why)' for a damaged slot a command acted on, else ''."""
    return f" (the slot is damaged: {s.error.removeprefix(f'slot {s.id!r}: ')})" if s.error else ""


def cmd_mv(store: BusAdmin, args: argparse.Namespace) -> int:
    same = validate_id(args.old) == validate_id(args.new)
    if not same:
        _refuse_existing(store, args.new, args.force)
    s = store.rename(args.old, args.new, overwrite=args.force)
    done = f"{args.old!r} already has that id: nothing changed" if same else f"renamed {args.old!r} -> {args.new!r}"
    print(done + _damage_note(s))
    return 0


def cmd_history(store: BusAdmin, args: argparse.Namespace) -> int:
    versions = store.history(args.id)
    if args.json:
        _print_json([v.to_dict() for v in versions])
    else:
        print(_table([_slot_row(v) for v in versions], LS_HEADER))
    return 0


def cmd_pin(store: BusAdmin, args: argparse.Namespace) -> int:
    pinned = args.command == "pin"
    s = store.pin(args.id, pinned)
    print(f"{s.id!r} is {'pinned: the quota never removes it' if pinned else 'unpinned'}{_damage_note(s)}")
    return 0


def cmd_config(store: BusAdmin, args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.keep is not None:
        changes["keep"] = args.keep
    if args.quota is not None:
        changes["quota_bytes"] = parse_size(args.quota)
    if changes:
        policy, removed = store.set_policy(**changes)
        for slot_id in removed:
            print(f"removed {slot_id!r} to meet the quota")
    else:
        policy = store.policy()
    quota = "none" if policy.quota_bytes is None else _human(policy.quota_bytes)
    print(
        _table(
            [
                ["bus:", store.location],
                ["keep:", f"{policy.keep} version(s) per slot"],
                ["quota:", quota],
                ["used:", _human(store.usage())],
            ]
        )
    )
    return 0


def cmd_migrate(store: BusAdmin, args: argparse.Namespace) -> int:
    migrate_all = getattr(store, "migrate_all", None)
    if migrate_all is None:  # only a folder can hold the seed's PNG layout
        raise ValueError(f"nothing to migrate in {store.location}: only a bus folder has the old PNG layout")
    found = migrate_all(dry_run=args.dry_run)
    if not found:
        print(f"nothing to migrate in {store.location}: no folder in the PNG layout")
    for slot_id, error in found:
        verb = "would migrate" if args.dry_run else "migrated"
        print(f"{slot_id}: {'ERROR: ' + error if error else verb}")
    return 1 if any(error for _, error in found) else 0


def cmd_gc(store: BusAdmin, args: argparse.Namespace) -> int:
    from .bus.object import ObjectBus, collect_garbage

    if not isinstance(store, ObjectBus):  # a folder bus cleans up after itself on every write
        print(f"nothing to collect in {store.location}: only an object-store bus (s3://) leaves objects behind")
        return 0
    report = collect_garbage(store, grace=args.grace, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {report.objects_removed} unnamed object(s) ({_human(report.bytes_freed)}), "
        f"{report.slots_forgotten} deleted slot manifest(s); "
        f"{'would repair' if args.dry_run else 'repaired'} {report.rows_repaired} listing row(s)"
    )
    if report.damaged:
        _note(f"{report.damaged} slot manifest(s) could not be read and were left alone")
    return 0


def grace_seconds(text: str) -> float:
    """`--grace`: seconds, at least 60 (a publish in flight must never look abandoned)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 60 <= value <= 10**9:
        raise argparse.ArgumentTypeError(f"{text!r} is not a grace period: give seconds, 60 or more")
    return value


def _listen_error(exc: OSError, host: str, port: int) -> str:
    """Why `serve` could not listen, and what to change: asyncio's '[Errno 98] error while
    attempting to bind on address ...' names neither."""
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: no such address or host name; check --host"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is in use: choose another with --port"
    if exc.errno == errno.EACCES:
        return f"port {port} needs privileges this user lacks: choose one above 1023 with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host!r}: not an address of this machine; check --host"
    return f"cannot listen on {host!r} port {port}: {exc.strerror or exc}"


def cmd_serve(store: BusAdmin, args: argparse.Namespace) -> int:
    from .http import app  # aiohttp and the page are needed by this command only

    # a bad --token or --token-file is a ValueError, a port in use an OSError: both clean errors
    token = app.given_token(args.token, args.token_file, {} if args.no_auth else os.environ)
    try:
        app.serve(store, args.host, args.port, token=token, no_auth=args.no_auth)
    except OSError as exc:
        raise ValueError(_listen_error(exc, args.host, args.port)) from None
    return 0


def port_number(text: str) -> int:
    """`--port`: 1-65535, or 0 for any free port (printed once listening)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number: give 1-65535 (0 picks a free one)")
    return port


# -- parser and entry point ------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """`--bus` lives on both levels so it works before or after the subcommand."""
    bus = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand that is not given --bus must not reset one given before it. The
    # action object is shared by every parser built from this parent, so no set_defaults.
    # str, not Path: Path("s3://b/x") is "s3:/b/x", a folder name open_bus could not refuse.
    bus.add_argument(
        "--bus",
        type=os.path.expanduser,
        metavar="BUS",
        default=argparse.SUPPRESS,
        help=f"bus folder or s3://bucket/prefix (default: ${BUS_ENV}, <ComfyUI>/input/gate_bus, "
        "or ~/.local/share/dataset-gates/gate_bus)",
    )
    parser = argparse.ArgumentParser(prog="gates", parents=[bus], description="Manage Dataset Gates bus slots.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ls", parents=[bus], help="list slots")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("info", parents=[bus], help="show everything about one slot")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verify", action="store_true", help="load the tensors and check the checksum")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "export",
        parents=[bus],
        help="write a slot as PNGs plus exact tensors",
        description="Write a slot as PNG files. OUT is a folder (created), "
        "which gets one PNG per image (ID_0000.png ...), one per "
        "mask (ID_mask_0000.png ...) and ID.safetensors; or, for "
        "a slot of one image, a file name ending in .png, which "
        "gets that PNG and NAME_mask.png beside it when the slot "
        "has a mask (a .png name for a batch is an error).",
    )
    p.add_argument("id")
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (created), or NAME.png for a one-image slot")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="PNG bits per channel")
    p.add_argument(
        "--tensors",
        choices=("safetensors", "npy", "none"),
        default=None,
        help="exact tensor copy format (default: safetensors for a folder, none "
        "for a .png name); npy widens bfloat16 to float32",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", parents=[bus], help="publish image files as a slot")
    p.add_argument("id")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE")
    p.add_argument(
        "--mask",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="greyscale mask files, white = masked: one for all images or one each "
        "(without it, images with alpha get the mask 1 - alpha, as ComfyUI's LoadImage)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing slot")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("rm", parents=[bus], help="delete a slot")
    p.add_argument("id")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("mv", parents=[bus], help="rename a slot")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--force", action="store_true", help="replace an existing slot NEW")
    p.set_defaults(func=cmd_mv)

    p = sub.add_parser("history", parents=[bus], help="list a slot's kept versions (id@-1, ...)")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_history)

    for name, what in (("pin", "keep a slot when the quota prunes"), ("unpin", "undo pin")):
        p = sub.add_parser(name, parents=[bus], help=what)
        p.add_argument("id")
        p.set_defaults(func=cmd_pin)

    p = sub.add_parser("config", parents=[bus], help="show or set the bus's storage policy")
    p.add_argument("--keep", type=int, metavar="K", help="versions kept per slot (1 = latest only)")
    p.add_argument("--quota", metavar="SIZE", help="disk quota, e.g. 20G; 'none' to remove")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "migrate", parents=[bus], help="convert folders of the old PNG layout (image.png + mask.png) to slots"
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be converted")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "gc",
        parents=[bus],
        help="remove what crashed writers left in an object-store bus",
        description="On an s3:// bus: delete version objects no slot names (a writer killed "
        "mid-publish), repair stale listing rows and forget deleted slots' manifests. Objects "
        "younger than --grace are left alone: they may belong to a publish in flight.",
    )
    p.add_argument(
        "--grace", type=grace_seconds, default=3600.0, metavar="SECONDS", help="minimum age to collect (default 3600)"
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be collected")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("serve", parents=[bus], help="browse the bus in a web browser")
    p.add_argument(
        "--host", default="127.0.0.1", help="address or name to listen on; beyond loopback a token is required"
    )
    p.add_argument("--port", type=port_number, default=8189, help="1-65535, or 0 for any free port (default: 8189)")
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help="require this token instead of a random one (16+ of A-Z a-z 0-9 _ -); "
        "other local users can see it in the process list: prefer --token-file or "
        "the DATASET_GATES_TOKEN environment variable",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        type=Path,
        help="require the token in this file (refused if group or others can read it: chmod 600)",
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="no token beyond loopback (DATASET_GATES_TOKEN is ignored): anyone who can reach "
        "the port can delete slots",
    )
    p.set_defaults(func=cmd_serve)
    return parser


def _creates_bus(args: argparse.Namespace) -> bool:
    """`import` and a `config` change make a missing bus; every other command reads one."""
    return args.command == "import" or (args.command == "config" and (args.keep, args.quota) != (None, None))


def _run(store: BusAdmin, args: argparse.Namespace) -> int:
    """Run the command on `store`: a bus that is not there is an error for a reading command
    (a typo'd --bus must not look like an empty bus), and is made, and said so, by a writing one."""
    if store.bus_exists():
        return args.func(store, args)
    if not _creates_bus(args):
        raise ValueError(
            f"no bus at {store.location}: nothing was ever published there; check --bus "
            f"(a gate's send_id, Bus Save or `gates import` creates one)"
        )
    rc = args.func(store, args)
    if store.bus_exists():
        _note(f"created the bus {store.location}")
    return rc


def main(argv: list[str] | None = None) -> int:
    """Parse, run one command, and turn user mistakes into `gates: error:` and status 1."""
    args = build_parser().parse_args(argv)
    bus = getattr(args, "bus", None)  # absent when given nowhere (SUPPRESS, see build_parser)
    try:
        return _run(open_bus(bus if bus is not None else default_bus_dir()), args)
    except BrokenPipeError:
        # `gates ls | head`: the reader left; stop quietly as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (SlotError, ValueError, OSError) as exc:
        print(f"gates: error: {_error_message(exc)}", file=sys.stderr)
        return 1
