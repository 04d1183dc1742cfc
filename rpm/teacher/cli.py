"""`rpm teacher augment|reject|trace`: the teacher LLM's outputs for DA, DPO and the thinking methods."""

from __future__ import annotations

import click

from rpm.bench.load import read_jsonl
from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup, parse_mapping
from rpm.core.errors import RpmError
from rpm.io import write_json, write_jsonl
from rpm.llm.client import ledger_row
from rpm.llm.serve import open_client
from rpm.runtime.load import set_threads
from rpm.teacher import tasks as teach


def _endpoint_option(f):
    return click.option(
        "--teacher", "teacher_spec", required=True, metavar="YAML",
        help="Teacher endpoint as inline YAML or a file: {name, backend: serve_local|local|openai, model, "
             "base_url, api_key_env, temperature, max_tokens}. serve_local serves a model directory on loopback "
             "(llama.cpp with JSON-schema answers for a GGUF-prepared model); local runs it in-process.")(f)


@click.group(cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
def teacher():
    """Teacher LLM outputs for DA (augment), DPO (reject) and the thinking methods (trace), cached."""


def _teacher_run(task, bench_file, teacher_spec, out, report, cache_dir, server_log, retries, retry_temperature,
                 max_tokens, trace_policy, augment_fraction, max_samples, seed, threads):
    set_threads(threads)
    spec = parse_mapping(teacher_spec, "--teacher")
    samples = read_jsonl(bench_file)
    policy = teach.TeacherPolicy(retries=retries, retry_temperature=retry_temperature, max_tokens=max_tokens,
                                 trace_policy=trace_policy, augment_fraction=augment_fraction,
                                 max_samples=max_samples, seed=seed)
    import openai  # the client's transport errors (the served and openai backends ask over HTTP)

    try:
        with open_client(spec, cache_dir, server_log, name="teacher") as client:
            result, rep = getattr(teach, task)(samples, client, policy)
    except openai.APIError as e:  # refused, timed out, or 429/5xx after the client's own retries
        ep = client.endpoint
        kept = (f"the {client.ledger.calls} answers received are cached in {cache_dir}: re-run to resume"
                if cache_dir else "no --cache-dir was given, so the answers received were not kept")
        raise RpmError(f"{out}: teacher {ep.name!r} at {ep.base_url} did not answer: "
                       f"{type(e).__name__}: {e} (timeout {ep.timeout:.0f} s, after up to "
                       f"{ep.max_retries} retries); {kept}.") from None
    rows = [s.to_dict() for s in result] if task == "augment" else result
    write_jsonl(out, rows)
    summary = {**rep.summary(), "ledger": ledger_row(client.endpoint, client.ledger, client.served_model)}
    write_json(report, summary)
    click.echo(f"{task}: {summary['accepted']} accepted, {summary['repaired']} repaired, {summary['rejected']} "
               f"rejected of {summary['samples']} asked ({summary['split_samples']} in the split); "
               f"{client.ledger.calls} calls, {client.ledger.cached} from cache")


def _teacher_command(task, doc):
    @teacher.command(task, help=doc)
    @click.option("--bench-file", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="The ID training split (results/data/bench/train.jsonl).")
    @_endpoint_option
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output JSONL.")
    @click.option("--report", required=True, type=click.Path(dir_okay=False),
                  help="JSON report: status and reason per sample, token ledger.")
    @click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                  help="Content-addressed response cache: a rerun never asks the endpoint twice.")
    @click.option("--server-log", type=click.Path(dir_okay=False), default=None,
                  help="Log of a served teacher (serve_local). [default: discarded]")
    @click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                  help="New attempts (another seed) after a malformed answer.")
    @click.option("--retry-temperature", type=float, default=0.7, show_default=True)
    @click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
    @click.option("--trace-policy", type=click.Choice(["strict", "lenient"]), default="strict", show_default=True,
                  help="strict: a trace without the core-features marker is rejected (the authors' rule); "
                       "lenient: kept whole and reported as repaired (weak offline teachers).")
    @click.option("--augment-fraction", type=click.FloatRange(0, 1), default=0.6, show_default=True,
                  help="Share of training samples that get an augmented dialogue (the paper: ~3k for ~5k).")
    @click.option("--max-samples", type=click.IntRange(min=1), default=None,
                  help="Ask about at most this many training samples (a seeded choice). [default: all]")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for a local teacher.")
    def command(**kw):
        _teacher_run(task, **kw)

    return command


_teacher_command("augment", "DA (Table 22): new 4-round dialogues for a share of the training samples.")
_teacher_command("reject", "DPO (Table 23): the teacher's answer without persona and character, as rejected.")
_teacher_command("trace", "Thinking (Table 15): the teacher's core features of the golden response, per sample.")
