"""The project's error types.

Every error a user can fix (a bad file, a bad option value, an endpoint that does not answer) is an
`RpmError`; the CLI turns it into one clean line in one place (`rpm.cli_shared.RpmGroup`), so a verb
never lists exception classes by hand. Library code raises the stage's own subclass.
"""

from __future__ import annotations


class RpmError(Exception):
    """Something the user can fix; the message says what and where (file, line, sample ID, field)."""


class RpmInputError(RpmError, ValueError):
    """Bad input: a file, a record, a setting or an option value. A ValueError for callers that catch those."""


class RpmOutputError(RpmError, OSError):
    """An output that could not be written (a full or size-limited file system, a directory that cannot be
    written): the message names the path, says the previous output is unchanged, and what to do. An OSError
    (with the original errno) for callers that catch those."""
