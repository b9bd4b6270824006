"""User-facing errors.

Every problem caused by user input (unknown names, bad values, missing files, corrupted data) raises
:class:`DebiaskitError` with a single-line message. The CLI prints ``error: <message>`` and exits with
status 2 instead of showing a traceback.
"""

from __future__ import annotations


class DebiaskitError(Exception):
    """An error the user can fix; the message is one line and says how."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataMissingError(DebiaskitError):
    """Required data files are not available locally and could not be downloaded."""


class ChecksumError(DebiaskitError):
    """A data file exists but its checksum does not match the expected value."""
