"""The README's command summary is a promise: every command and every option of it is there."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gates import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SHARED = {"-h", "--help", "--bus"}  # on every command; the text above the summary says so


def _summary() -> str:
    section = README[README.index("## Command line") :]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_and_option_is_in_the_readme_summary():
    """`import --force` and `export --tensors` were once left out."""
    summary = _summary()
    for name, parser in _commands().items():
        # a command's entry: from `gates NAME` to the next `gates` (two entries share a line)
        found = re.search(rf"gates {name}\b(.*?)(?=gates |\n|$)", summary)
        assert found, f"`gates {name}` is not in the README's command summary"
        entry = found.group(1)
        for action in parser._actions:
            options = [o for o in action.option_strings if o not in SHARED]
            if options:
                assert any(re.search(rf"(?<![\w-]){re.escape(o)}\b", entry) for o in options), (
                    f"`gates {name}` {'/'.join(options)} is not in the README's command summary"
                )
