"""Outputs under faults: a write that fails part-way leaves the previous output byte for byte, no temporary file,
and one clear error naming the path and what to do.

The fault is a file-size limit (RLIMIT_FSIZE, `ulimit -f`) in a subprocess, with SIGXFSZ ignored so that
write() fails with EFBIG exactly where a full disk fails with ENOSPC; rpm.io treats both alike."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rpm.core.errors import RpmError, RpmOutputError
from rpm.io import atomic_dir, write_json, write_text

BIN = Path(sys.executable).parent
LIMIT_KB = 4  # `ulimit -f` counts 1024-byte blocks in bash

# The writers under test, in a child process that runs under the limit; prints what each raised.
CHILD = r"""
import json, sys
from pathlib import Path
from rpm.core.errors import RpmOutputError
from rpm.io import atomic_dir, atomic_path, write_json, write_jsonl, write_text

root, big = Path(sys.argv[1]), "x" * 20000

def via_atomic_path(p):
    with atomic_path(p) as tmp, open(tmp, "w") as f:
        f.write(big)

def via_atomic_dir(p):
    with atomic_dir(p) as tmp:
        (tmp / "small.txt").write_text("new")
        (tmp / "big.txt").write_text(big)

def via_safetensors(p):  # a Rust-backed writer (model weights): its own exception type, "(os error 27)"
    import numpy as np
    from safetensors.numpy import save_file
    with atomic_dir(p) as tmp:
        save_file({"w": np.zeros(10000, dtype=np.float32)}, str(tmp / "model.safetensors"))

writers = {"atomic_path": via_atomic_path, "atomic_dir": via_atomic_dir, "atomic_dir_safetensors": via_safetensors,
           "write_text": lambda p: write_text(p, big),
           "write_json": lambda p: write_json(p, {"x": big}),
           "write_jsonl": lambda p: write_jsonl(p, ({"i": i, "pad": "y" * 100} for i in range(1000)))}
raised = {}
for name, write in writers.items():
    try:
        write(root / name / "out")
    except RpmOutputError as e:
        raised[name] = {"message": str(e), "errno": e.errno, "is_oserror": isinstance(e, OSError)}
    else:
        raised[name] = None
print(json.dumps(raised))
"""
WRITERS = ("atomic_path", "atomic_dir", "atomic_dir_safetensors", "write_text", "write_json", "write_jsonl")


def limited(*cmd: str, kb: int = LIMIT_KB) -> list[str]:
    """`cmd` under a file-size limit of `kb` KiB, SIGXFSZ ignored (an ignored signal stays ignored across exec)."""
    return ["bash", "-c", f'trap "" XFSZ; ulimit -f {kb}; exec "$@"', "limited", *cmd]


def env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("previous", [True, False], ids=["overwrite", "fresh"])
def test_every_atomic_writer_keeps_the_previous_output_when_the_disk_is_full(tmp_path, previous):
    if previous:
        for name in WRITERS:
            if name.startswith("atomic_dir"):
                (tmp_path / name / "out").mkdir(parents=True)
                (tmp_path / name / "out" / "small.txt").write_text("old")
            else:
                (tmp_path / name).mkdir()
                (tmp_path / name / "out").write_text("the previous output\n")
    before = snapshot(tmp_path)
    proc = subprocess.run(limited(sys.executable, "-c", CHILD, str(tmp_path)), capture_output=True, text=True,
                          env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    raised = json.loads(proc.stdout)
    for name in WRITERS:
        err = raised[name]
        assert err is not None, f"{name}: wrote 20 kB under a {LIMIT_KB} KiB limit without an error"
        out = tmp_path / name / "out"
        assert err["message"].startswith(f"{out}: writing the output failed part-way: File too large;"), err
        assert "is unchanged" in err["message"] and "free space" in err["message"], err
        assert err["errno"] == 27 and err["is_oserror"]  # EFBIG, still an OSError for callers that catch those
    # The previous outputs byte for byte, and nothing else: no temporary file, no half-written output.
    assert snapshot(tmp_path) == before
    assert [p.name for p in tmp_path.rglob("*") if p.name.startswith(".")] == []


def test_a_verb_under_a_full_disk_keeps_its_old_outputs_and_says_so_in_one_line(tmp_path):
    out = tmp_path / "bench"
    synth = [str(BIN / "rpm"), "bench", "synth", "--out", str(out), "--n-train", "4", "--n-per-subset", "2"]
    subprocess.run(synth, check=True, capture_output=True, env=env(), timeout=120)
    before = snapshot(out)

    proc = subprocess.run(limited(*synth, "--seed", "1"), capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"Error: {out / 'train.jsonl'}: writing the output failed part-way: File too large;")
    assert "ulimit -f" in lines[0] and "re-run" in lines[0]
    assert snapshot(out) == before  # byte-identical, and no temporary file beside them

    # Without the limit the same command does replace them: the limit was what kept them.
    subprocess.run([*synth, "--seed", "1"], check=True, capture_output=True, env=env(), timeout=120)
    after = snapshot(out)
    assert after.keys() == before.keys() and after["train.jsonl"] != before["train.jsonl"]


def test_an_output_that_cannot_be_created_names_its_path(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    target = tmp_path / "a_file" / "out.json"
    with pytest.raises(RpmError, match=rf"^{target}: cannot create the output: .*choose another output path"):
        write_json(target, {"x": 1})
    with pytest.raises(RpmOutputError, match="cannot create the output"):
        with atomic_dir(tmp_path / "a_file" / "d"):
            pass
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_a_failure_of_the_callers_own_is_not_reworded(tmp_path):
    """Only the file system refusing bytes becomes RpmOutputError; the block's own errors pass through."""
    with pytest.raises(FileNotFoundError):
        with atomic_dir(tmp_path / "d"):
            (tmp_path / "missing" / "input.txt").read_text()
    assert list(tmp_path.iterdir()) == []


def test_writers_never_set_the_process_umask(tmp_path, monkeypatch):
    """os.umask() sets the umask of every thread at once (a directory made meanwhile by another thread, such as
    a concurrent cache writer, would get mode 0777): the writers read it from /proc instead."""
    old = os.umask(0o022)
    try:
        def refuse(mask):
            raise AssertionError(f"os.umask({mask:o}) called")

        monkeypatch.setattr(os, "umask", refuse)
        write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "inner").write_text("y")
        monkeypatch.undo()
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
