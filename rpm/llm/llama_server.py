"""llama.cpp's own OpenAI-compatible server (the `xllamacpp` wheel) for a GGUF file, as a process of its own.

    python -m rpm.llm.llama_server --model FILE.gguf --port 40123 [--threads 1] [--parallel 2] [--ctx 8192]

It listens on 127.0.0.1 only, prints one "LISTENING <url>" line once the model is loaded, and serves
`/health`, `/v1/models` and `/v1/chat/completions` with `response_format` (a JSON schema: grammar-
constrained decoding) and `logprobs` / `top_logprobs`. The server threads are llama.cpp's; this process only
blocks. SIGTERM ends it at once (os._exit): a graceful stop would wait for an in-flight request's client.
With --parent PID it also ends within a second of that process's death, however it died (a SIGKILLed job
would otherwise leave its server running: the server has a session of its own, so no group signal reaches it).
Each completion logs one "launch_slot_" line, so a test counts the requests a server answered from its log.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpm.llm.llama_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the GGUF file to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0: a free port chosen by the system")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for prompt evaluation and generation")
    parser.add_argument("--parallel", type=int, default=2, help="requests decoded at once (server slots)")
    parser.add_argument("--ctx", type=int, default=8192, help="context of all slots together, in tokens")
    parser.add_argument("--parent", type=int, default=None, help="exit when the process with this PID has ended")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        print(f"{args.model}: no such GGUF file", file=sys.stderr)
        return 2
    import xllamacpp  # the extension loads only in the server process

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as e:  # a bad model file or a port in use
        print(f"llama.cpp server did not start for {args.model} on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    print(f"LISTENING {server.listening_address}", flush=True)
    while True:
        time.sleep(1.0)
        if args.parent is not None and os.getppid() != args.parent:   # orphaned: the parent is gone
            os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
