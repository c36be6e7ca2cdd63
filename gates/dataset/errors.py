"""The errors of the dataset library: each message is for the person curating, not for a log.

Every one is a ValueError, so a caller that only wants "this input cannot be used" catches
one type; messages name files by their path inside the dataset, never by a server path.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset folder, file or request that cannot be used as asked."""


class FileError(DatasetError):
    """One file of the dataset cannot be read: gone, a link, too big, damaged or not an image.

    A page shows it as that file's error row; the rest of the page goes on.
    """


class JournalError(DatasetError):
    """The journal cannot be read or written (a link planted in its place, a read-only folder)."""


class RootRefused(DatasetError):
    """A folder outside the folders this server allows (DATASET_GATES_ROOTS)."""


class SaveRefused(DatasetError):
    """A save that would collide, overwrite, escape its folder or write into its source.

    Raised before anything is written; `problems` lists every reason found, one per line of
    the message.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("nothing was saved: " + "; ".join(problems))
