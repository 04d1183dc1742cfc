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
