"""Atomic file outputs: an interrupted job leaves nothing that looks complete.

An output is written under a temporary name beside it (`.NAME.XXXX.tmp`) and renamed onto its path only
when the whole block succeeded. A write that fails part-way (no space left, a file-size limit, a quota)
removes the temporary file, leaves the previous output byte for byte as it was, and raises
`RpmOutputError` naming the path and what to do (tests/test_write_faults.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from rpm.core import strictjson
from rpm.core.errors import RpmOutputError

# A block's OSError with one of these is the file system refusing the bytes, not the caller's own error.
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# Rust-backed writers (safetensors, tokenizers) raise their own exception type, quoting the OS error as Rust's
# std::io::Error prints it: "... File too large (os error 27)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _umask() -> int:
    """The process umask, read without setting it: os.umask() would change it for a moment for every thread
    (a directory another thread creates then would get mode 0777)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0)  # not Linux: the old way
    os.umask(mask)
    return mask


def _errno(err: BaseException) -> int | None:
    if isinstance(err, OSError):
        return err.errno
    m = _RUST_OS_ERROR.search(str(err))
    return int(m.group(1)) if m else None


def _output_error(path: Path, err: BaseException, what: str) -> RpmOutputError:
    code = _errno(err)
    reason = os.strerror(code) if code is not None else str(err)
    if code in _NO_SPACE:
        fix = (f"free space on the file system of {path.parent} (or raise the file-size limit / quota: "
               "`ulimit -f`, `quota`) and re-run")
    else:
        fix = f"make {path.parent} writable or choose another output path, and re-run"
    out = RpmOutputError(f"{path}: {what}: {reason}; the previous {path.name} (if any) is unchanged and no partial "
                         f"file was left; {fix}")
    out.errno = code
    return out


@contextlib.contextmanager
def _translated(path: Path, what: str, only_no_space: bool = False) -> Iterator[None]:
    """Re-raise an OSError (or, with `only_no_space`, only the file system refusing bytes, whatever the
    exception's type) as RpmOutputError naming `path`; other exceptions pass through unchanged."""
    try:
        yield
    except RpmOutputError:
        raise
    except Exception as err:
        refused = _errno(err) in _NO_SPACE
        if not refused and (only_no_space or not isinstance(err, OSError)):
            raise
        raise _output_error(path, err, what) from err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    with _translated(path, "cannot create the output"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _translated(path, "writing the output failed part-way", only_no_space=True):
            yield tmp
        with _translated(path, "cannot put the finished output in place"):
            # mkstemp makes the file 0600; give the output the mode a plain open() would have.
            if tmp.exists():
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    with _translated(path, "cannot create the output"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with _translated(path, "writing the output failed part-way", only_no_space=True):
            yield tmp
        with _translated(path, "cannot put the finished output in place"):
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object per line, atomically; returns the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike, error) -> Iterator[tuple[int, object]]:
    """(line number, decoded object) for each line of a JSONL file: the one line reader of every loader.

    `error(message, line)` builds the exception the caller raises for an undecodable line (invalid
    UTF-8, a blank line, malformed JSON, or JSON that `rpm.core.strictjson` refuses: a duplicate key, a lone
    surrogate, runaway nesting), so each loader keeps its own error type and wording.
    """
    raw_lines = Path(path).read_bytes().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the newline that ends the last record
    for lineno, raw in enumerate(raw_lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"invalid UTF-8 at byte {e.start} of the line: {raw[max(0, e.start - 10):e.start + 10]!r}",
                        lineno) from None
        if not text.strip():
            raise error("blank line (a JSONL file holds one JSON object per line)", lineno)
        try:
            obj = strictjson.loads(text)
        except json.JSONDecodeError as e:
            raise error(f"malformed JSON at column {e.colno}: {e.msg}", lineno) from None
        except strictjson.StrictJSONError as e:
            raise error(str(e), lineno) from None
        yield lineno, obj
