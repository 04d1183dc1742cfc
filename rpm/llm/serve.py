"""A real OpenAI-compatible server on loopback for a local model directory: the one local server.

The offline default's judges, teacher and benchmark builder talk to the packaged SmolLM2 over HTTP through
the same client as a remote endpoint (rpm.llm.client, backend "openai"), so the default run and the tests
exercise the path the paper's endpoints take. Which server runs depends on what the directory is:

- prepared from a GGUF file (`rpm model prepare` with source gguf_package records it in rpm_model.json):
  llama.cpp's own server (rpm.llm.llama_server, the `xllamacpp` wheel) serves that GGUF file. It takes
  `response_format` with a JSON schema (grammar-constrained decoding) and returns `logprobs` /
  `top_logprobs`, so JSON answers are well-formed and verdicts come with their probabilities.
- any other Hugging Face directory (a trained RPM, the tests' tiny random model): `transformers serve`
  (5.23). It refuses `response_format` and `logprobs`, so its endpoint says it supports neither and the
  client falls back to parsing the text (repair and retry). A request's `temperature` only sets the
  temperature there: whether it samples is the served model's generation_config `do_sample` (false for our
  prepared models), so the server is given a view of the model directory whose generation_config samples;
  temperature 0 is still greedy, and a retry above 0 with another seed really asks again.
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

from rpm.core.errors import RpmError
from rpm.llm.client import ChatClient, Endpoint


class ServerError(RpmError):
    """A local server that did not start; the message quotes its log."""


LLAMA_CPP, TRANSFORMERS = "llama.cpp", "transformers"
# A served small model's JSON strings are capped at this many characters (Endpoint.max_string_length), so a
# string it would repeat forever closes and the answer stays within max_tokens; an endpoint spec may set its own.
LOCAL_MAX_STRING = 300
# Part of every served model's cache key: bump it when what a server answers for the same request changes.
SERVE_VERSION = 2


@dataclass(frozen=True)
class Server:
    base_url: str   # e.g. http://127.0.0.1:40123/v1 (what an Endpoint's base_url takes)
    model: str      # the model name requests must carry: the served directory
    pid: int
    kind: str = TRANSFORMERS  # LLAMA_CPP | TRANSFORMERS

    @property
    def structured_outputs(self) -> bool:
        """Whether the server takes `response_format` with a JSON schema."""
        return self.kind == LLAMA_CPP

    @property
    def logprobs(self) -> bool:
        """Whether the server returns `top_logprobs`."""
        return self.kind == LLAMA_CPP


def served_gguf(model_dir: str | os.PathLike) -> Path | None:
    """The GGUF file a prepared directory was made from (rpm_model.json's gguf_file), if it still exists."""
    record = Path(model_dir) / "rpm_model.json"
    if not record.is_file():
        return None
    gguf = json.loads(record.read_text(encoding="utf-8")).get("gguf_file")
    return Path(gguf) if gguf and Path(gguf).is_file() else None


def server_kind(model_dir: str | os.PathLike) -> str:
    return LLAMA_CPP if served_gguf(model_dir) else TRANSFORMERS


def serve_scope(model_dir: str | os.PathLike) -> str:
    """The cache identity of a locally served model: its preparation record (spec and weight hashes, from
    `rpm model prepare`) and the server that answers for it, not the server's port or the directory's path."""
    d = Path(model_dir)
    record = d / "rpm_model.json" if (d / "rpm_model.json").is_file() else d / "config.json"
    return f"serve_local:v{SERVE_VERSION}:{server_kind(d)}:{hashlib.sha256(record.read_bytes()).hexdigest()}"


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


def llama_command(gguf: Path, host: str, port: int, threads: int, parallel: int) -> list[str]:
    """llama.cpp's server (rpm.llm.llama_server) for a GGUF file, under this interpreter."""
    return [sys.executable, "-m", "rpm.llm.llama_server", "--model", str(gguf), "--host", host, "--port", str(port),
            "--threads", str(threads), "--parallel", str(parallel), "--parent", str(os.getpid())]


@contextlib.contextmanager
def local_server(model_dir: str | os.PathLike, *, host: str = "127.0.0.1", port: int | None = None,
                 log_path: str | os.PathLike | None = None, startup_timeout: float = 300.0,
                 threads: int | None = None, parallel: int = 2) -> Iterator[Server]:
    """Start the model's server on loopback (llama.cpp for a directory prepared from a GGUF file,
    `transformers serve` otherwise), wait for /health, yield it, stop it on exit.

    The server runs in its own process group and is stopped with SIGTERM (SIGKILL after 10 s), also when
    the block raises. A server that exits or never becomes healthy is an error quoting its log.
    `threads` defaults to OMP_NUM_THREADS (the job's cores), else 1.
    """
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json); "
                                "prepare it with `rpm model prepare`")
    port = port or free_port(host)
    root = f"http://{host}:{port}"
    gguf = served_gguf(model_dir)
    threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 1)
    view = None if gguf else sampling_view(model_dir)
    command = llama_command(gguf, host, port, threads, parallel) if gguf else server_command(view, host, port)
    kind = LLAMA_CPP if gguf else TRANSFORMERS
    what = f"{kind} server for {model_dir}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    try:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    except BaseException:
        if view:
            shutil.rmtree(view, ignore_errors=True)
        raise
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(root):
            if proc.poll() is not None:
                raise ServerError(f"the {what} exited with code {proc.returncode} before it answered "
                                  f"/health{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ServerError(f"the {what} did not answer {root}/health within {startup_timeout:.0f} s"
                                  f"{_tail(log_path)}")
            time.sleep(0.2)
        yield Server(base_url=f"{root}/v1", model=str(view or model_dir), pid=proc.pid, kind=kind)
    finally:
        stop(proc)
        if log_path:
            log.close()
        if view:
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

    def _call(self, messages, max_tokens, temperature, seed, schema=None, top_logprobs=0):
        if self.server is None:
            self.server = self.stack.enter_context(local_server(self.model_dir, log_path=self.server_log))
            self.endpoint = replace(self.endpoint, base_url=self.server.base_url, model=self.server.model)
        return super()._call(messages, max_tokens, temperature, seed, schema, top_logprobs)


@contextlib.contextmanager
def served_client(model_dir: str | os.PathLike, fields: dict, cache_dir: str | os.PathLike | None = None,
                  server_log: str | os.PathLike | None = None) -> Iterator[ServedClient]:
    """A client asking `model_dir` served on loopback (started when first needed, stopped on exit); `fields`
    are the other Endpoint settings (name, temperature, max_tokens, ...)."""
    model_dir = str(Path(model_dir).resolve())
    # base_url is a placeholder until the server is up; the cache key uses cache_scope instead.
    # What the server takes is known before it starts (a GGUF-prepared directory gets llama.cpp's).
    capable = server_kind(model_dir) == LLAMA_CPP
    endpoint = Endpoint.from_dict({"max_string_length": LOCAL_MAX_STRING if capable else None, **fields,
                                   "backend": "openai", "model": model_dir, "base_url": "http://127.0.0.1:0/v1",
                                   "cache_scope": serve_scope(model_dir), "structured_outputs": capable,
                                   "logprobs": capable})
    with contextlib.ExitStack() as stack:
        yield ServedClient(endpoint, cache_dir=Path(cache_dir) if cache_dir else None, served_model=model_dir,
                           stack=stack, model_dir=model_dir, server_log=server_log)


@contextlib.contextmanager
def open_client(spec: dict, cache_dir: str | os.PathLike | None, server_log: str | os.PathLike | None = None,
                name: str = "llm") -> Iterator[ChatClient]:
    """A ChatClient for an endpoint spec (rpm.llm.client.Endpoint fields), for the teacher and the benchmark
    builder. With `serve: MODEL_DIR` (or `backend: serve_local, model: MODEL_DIR`) the model is served on a
    free loopback port from the first cache miss (llama.cpp for a GGUF-prepared directory) and asked over
    HTTP, like any remote endpoint; its cache identity is the prepared model (serve_scope), not the port, so a
    re-run in a new process still answers from the cache."""
    spec = dict(spec)
    spec.setdefault("name", name)
    serve_dir = spec.pop("serve", None)
    if spec.get("backend") == "serve_local":
        serve_dir = spec.pop("model")
        spec.pop("backend")
        spec.pop("base_url", None)
        spec.pop("api_key_env", None)
    if serve_dir is None:
        yield ChatClient(Endpoint.from_dict(spec), cache_dir=Path(cache_dir) if cache_dir else None)
        return
    # A 135M model on 2 CPU cores writes ~10 tokens/s, slower beside other jobs: a long answer can take
    # minutes, past the client's 120 s default.
    spec.setdefault("timeout", 600.0)
    log_path = Path(server_log) if server_log else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    with served_client(serve_dir, spec, cache_dir, log_path) as client:
        yield client
