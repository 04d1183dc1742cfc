"""A real OpenAI-compatible server on loopback for a local model directory: `transformers serve`.

The offline default's judges (and the benchmark builder) talk to the packaged SmolLM2 over HTTP through
the same client as a remote endpoint (rpm.llm, backend "openai"), so the default run and the tests
exercise the path the paper's endpoints take. What the server does and does not do (transformers 5.23):
/health answers when the model is loaded; /v1/chat/completions works; `logprobs` / `top_logprobs` in a
chat request are ignored (it logs "Ignoring unsupported fields"), so nothing here relies on them. A request's
`temperature` only sets the temperature: whether it samples is the served model's generation_config
`do_sample` (false for our prepared models), so the server is given a view of the model directory whose
generation_config samples; a request at temperature 0 is still greedy (the server turns sampling off), and
a retry at a temperature above 0 with another seed really asks again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from rpm.llm.client import ChatClient, Endpoint


@dataclass(frozen=True)
class Server:
    base_url: str   # e.g. http://127.0.0.1:40123/v1 (what an Endpoint's base_url takes)
    model: str      # the model name requests must carry: the served directory
    pid: int


def serve_scope(model_dir: str | os.PathLike) -> str:
    """The cache identity of a locally served model: its preparation record (spec and weight hashes, from
    `rpm model prepare`), not the server's port or the directory's path."""
    d = Path(model_dir)
    record = d / "rpm_model.json" if (d / "rpm_model.json").is_file() else d / "config.json"
    return f"serve_local:{hashlib.sha256(record.read_bytes()).hexdigest()}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _healthy(root: str) -> bool:
    try:
        with urllib.request.urlopen(f"{root}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def server_command(model_dir: str | os.PathLike, host: str, port: int) -> list[str]:
    """The `transformers serve` command line; the venv's own entry point, so PATH does not matter."""
    exe = Path(sys.executable).parent / "transformers"
    return [str(exe if exe.exists() else "transformers"), "serve", str(model_dir), "--host", host, "--port", str(port),
            "--device", "cpu", "--log-level", "warning", "--default-seed", "0"]


@contextlib.contextmanager
def local_server(model_dir: str | os.PathLike, *, host: str = "127.0.0.1", port: int | None = None,
                 log_path: str | os.PathLike | None = None, startup_timeout: float = 300.0) -> Iterator[Server]:
    """Start `transformers serve MODEL_DIR` on loopback, wait for /health, yield it, stop it on exit.

    The server runs in its own process group and is stopped with SIGTERM (SIGKILL after 10 s), also when
    the block raises. A server that exits or never becomes healthy is an error quoting its log.
    """
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json); "
                                "prepare it with `rpm model prepare`")
    port = port or free_port(host)
    root = f"http://{host}:{port}"
    view = sampling_view(model_dir)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    try:
        proc = subprocess.Popen(server_command(view, host, port), stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    except BaseException:
        shutil.rmtree(view, ignore_errors=True)
        raise
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(root):
            if proc.poll() is not None:
                raise RuntimeError(f"`transformers serve {model_dir}` exited with code {proc.returncode} before it "
                                   f"answered /health{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"`transformers serve {model_dir}` did not answer {root}/health within "
                                   f"{startup_timeout:.0f} s{_tail(log_path)}")
            time.sleep(0.5)
        yield Server(base_url=f"{root}/v1", model=str(view), pid=proc.pid)
    finally:
        stop(proc)
        if log_path:
            log.close()
        shutil.rmtree(view, ignore_errors=True)


def sampling_view(model_dir: Path) -> Path:
    """A temporary directory of symlinks to `model_dir`'s files whose generation_config.json samples."""
    view = Path(tempfile.mkdtemp(prefix=f"rpm-serve-{model_dir.name}-"))
    for f in model_dir.iterdir():
        if f.name != "generation_config.json":
            (view / f.name).symlink_to(f)
    gen_path = model_dir / "generation_config.json"
    gen = json.loads(gen_path.read_text(encoding="utf-8")) if gen_path.is_file() else {}
    (view / "generation_config.json").write_text(json.dumps({**gen, "do_sample": True}, indent=2), encoding="utf-8")
    return view


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(log_path, n: int = 20) -> str:
    if not log_path or not Path(log_path).is_file():
        return ""
    lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    return ":\n" + "\n".join(lines) if lines else ""


@dataclass
class ServedClient(ChatClient):
    """A ChatClient for a local model behind `transformers serve`: the server starts on the first cache miss
    only, so a re-run whose answers are all cached starts no server. Its cache key (the endpoint's
    cache_scope) holds no port."""
    stack: contextlib.ExitStack | None = None
    model_dir: str = ""
    server_log: str | os.PathLike | None = None
    server: Server | None = None

    def _call(self, messages, max_tokens, temperature, seed):
        if self.server is None:
            self.server = self.stack.enter_context(local_server(self.model_dir, log_path=self.server_log))
            self.endpoint = replace(self.endpoint, base_url=self.server.base_url, model=self.server.model)
        return super()._call(messages, max_tokens, temperature, seed)


@contextlib.contextmanager
def served_client(model_dir: str | os.PathLike, fields: dict, cache_dir: str | os.PathLike | None = None,
                  server_log: str | os.PathLike | None = None) -> Iterator[ServedClient]:
    """A client asking `model_dir` served on loopback (started when first needed, stopped on exit); `fields`
    are the other Endpoint settings (name, temperature, max_tokens, ...)."""
    model_dir = str(Path(model_dir).resolve())
    # base_url is a placeholder until the server is up; the cache key uses cache_scope instead.
    endpoint = Endpoint.from_dict({**fields, "backend": "openai", "model": model_dir, "base_url": "http://127.0.0.1:0/v1",
                           "cache_scope": serve_scope(model_dir)})
    with contextlib.ExitStack() as stack:
        yield ServedClient(endpoint, cache_dir=Path(cache_dir) if cache_dir else None, served_model=model_dir,
                           stack=stack, model_dir=model_dir, server_log=server_log)
