"""The verbs `rpm bench build characters|personas|dialogues|split` (registered on `rpm bench`)."""

from __future__ import annotations

from pathlib import Path

import click

from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup, parse_mapping
from rpm.construct.characters import (
    CharacterSettings,
    classification_control,
    collect_characters,
    read_known_characters,
)
from rpm.construct.common import (
    PACKAGED_SEEDS,
    AskPolicy,
    counts_line,
    read_character_seeds,
    read_context_seeds,
    read_items,
    read_persona_seeds,
    write_step,
)
from rpm.construct.dialogues import DialogueSettings, collect_dialogues
from rpm.construct.personas import PersonaSettings, collect_personas
from rpm.construct.retrieve import make_retriever
from rpm.construct.split import SplitSettings, split, write_split
from rpm.llm.serve import open_client


def _endpoint_options(f):
    """Options of every step that asks the LLM."""
    options = [
        click.option("--endpoint", "endpoint_spec", required=True, metavar="YAML",
                     help="The LLM as inline YAML or a file, rpm.llm.client.Endpoint fields: {backend: openai, "
                          "base_url, model, api_key_env, temperature, max_tokens, ...}; or {serve: MODEL_DIR, "
                          "max_tokens, ...} to serve a prepared model directory with `transformers serve` on loopback "
                          "for this step."),
        click.option("--server-log", type=click.Path(dir_okay=False), default=None,
                     help="Log of the served model (with `serve:`). [default: server.log beside --report]"),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Content-addressed answer cache: a re-run never asks the endpoint twice."),
        click.option("--report", required=True, type=click.Path(dir_okay=False),
                     help="JSON report: asked / accepted / repaired / rejected per sub-task, reason and attempts "
                          "per item, the endpoint ledger."),
        click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help="New attempts (another seed, --retry-temperature) after an answer that is not the "
                          "requested JSON."),
        click.option("--retry-temperature", type=click.FloatRange(min=0), default=0.7, show_default=True,
                     help="Sampling temperature of the retries (the first attempt uses the endpoint's)."),
        click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True,
                     help="Most new tokens per answer."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of every random choice and of the retries' sampling."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run(step_fn, endpoint_spec, server_log, cache_dir, report, retries, retry_temperature, max_tokens, seed, **kw):
    """Open the client, run one step, write its items and report, print the counts."""
    import openai  # the client's own dependency, loaded only by the steps that ask

    policy = AskPolicy(retries=retries, retry_temperature=retry_temperature, max_tokens=max_tokens, seed=seed)
    spec = parse_mapping(endpoint_spec, "--endpoint")
    try:
        with open_client(spec, cache_dir, server_log or Path(report).parent / "server.log",
                         name="bench_build") as client:
            summary = step_fn(client, policy, **kw)
    except openai.APIError as e:  # refused, timed out, or 429/5xx after the client's own retries
        ep = client.endpoint
        kept = (f"the {client.ledger.calls} answers received are cached in {cache_dir}: re-run the step to resume"
                if cache_dir else "no --cache-dir was given, so the answers received were not kept")
        raise click.ClickException(
            f"{report}: endpoint {ep.name!r} at {ep.base_url} did not answer: {type(e).__name__}: {e} (timeout "
            f"{ep.timeout:.0f} s, after up to {ep.max_retries} retries). {kept}. A slow local model may need a "
            "longer `timeout` (seconds) in --endpoint.") from None
    click.echo(counts_line(summary))


@click.group("build", cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
def build():
    """The paper's benchmark construction (Appendix A.1, Tables 4-7) against any OpenAI-compatible LLM.

    Steps in order: characters -> personas -> dialogues -> split. Each reads the previous step's file,
    writes its own and a JSON report; answers are cached, so a re-run asks the endpoint nothing.
    """


@build.command("characters")
@click.option("--persona-seeds", required=True, type=click.Path(exists=True, dir_okay=False),
              help="PersonaChat-style seed YAML: a list of {id, persona: [sentences], dialogue: [utterances]}.")
@click.option("--character-seeds", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Optional hand-named characters, YAML list of {id, character_name, category, character_description, "
                   "persona_seeds: [persona seed ids]}; refined and classified like the LLM's candidates.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="characters.jsonl to write.")
@click.option("--num-domains", type=click.IntRange(min=1), default=4, show_default=True,
              help="'about N characters' asked per seed persona (Table 4).")
@click.option("--max-personas", type=click.IntRange(min=1), default=None,
              help="Ask about the first N seed personas only. [default: all]")
@click.option("--retriever-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Local-files retriever: text about a character in DIR/<name_slug>.txt or DIR/<name_slug>/*.txt, "
                   "appended to the refinement prompt. [default: none, the LLM alone]")
@click.option("--retriever-max-chars", type=click.IntRange(min=1), default=4000, show_default=True,
              help="Most characters of retrieved text per character.")
@click.option("--classify-control", default=str(PACKAGED_SEEDS / "known_characters.yaml"), show_default=True,
              help="Characters of known kind (YAML, as the shipped file) classified beside the built ones: the "
                   "classification's accuracy and exact CI go in the report ('none': skip).")
@_endpoint_options
def characters_cmd(persona_seeds, character_seeds, out, num_domains, max_personas, retriever_dir,
                   retriever_max_chars, classify_control, **kw):
    """Step 1: agent characters from seed personas (Table 4's three prompts), and the classifier's control."""
    known = read_known_characters(classify_control) if classify_control != "none" else None

    def step(client, policy):
        retriever = make_retriever(retriever_dir, retriever_max_chars)
        rows, reports = collect_characters(read_persona_seeds(persona_seeds), client, policy,
                                           CharacterSettings(num_domains, max_personas), retriever,
                                           read_character_seeds(character_seeds) if character_seeds else [])
        extra = {"retriever": retriever.name if retriever else "none",
                 "retriever_dir": str(retriever_dir) if retriever_dir else None}
        if known:
            report, extra["classify_control"] = classification_control(known, client, policy)
            reports.append(report)
        return write_step(out, rows, kw["report"], "characters", reports, client, extra)
    _run(step, **kw)


@build.command("personas")
@click.option("--characters", "characters_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="characters.jsonl of Step 1.")
@click.option("--persona-seeds", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The seed YAML Step 1 read (the English personas are these seeds).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="personas.jsonl to write.")
@click.option("--max-pairs", type=click.IntRange(min=1), default=None,
              help="Expand at most N (seed persona, character) pairs, a seeded choice (the paper: 1k). [default: all]")
@_endpoint_options
def personas_cmd(characters_file, persona_seeds, out, max_pairs, **kw):
    """Step 2: user personas in English (the seeds) and five rewritten backgrounds (Table 5)."""
    def step(client, policy):
        chars = read_items(characters_file, ("seed_persona_ids", "kind"), "character_id")
        rows, reports = collect_personas(chars, read_persona_seeds(persona_seeds), client, policy,
                                         PersonaSettings(max_pairs, kw["seed"]))
        return write_step(out, rows, kw["report"], "personas", reports, client)
    _run(step, **kw)


@build.command("dialogues")
@click.option("--characters", "characters_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="characters.jsonl of Step 1.")
@click.option("--personas", "personas_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="personas.jsonl of Step 2.")
@click.option("--context-seeds", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="PersonaChat- or DailyDialog-style seed YAML (entries with a `dialogue`); repeatable.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="dialogues.jsonl to write.")
@click.option("--n-turn", type=click.IntRange(min=0), default=2, show_default=True,
              help="Turn-level (8-round) compositions to ask for (the paper: 0.6k).")
@click.option("--n-word", type=click.IntRange(min=0), default=2, show_default=True,
              help="Word-level compositions to ask for (the paper: 0.6k).")
@_endpoint_options
def dialogues_cmd(characters_file, personas_file, context_seeds, out, n_turn, n_word, **kw):
    """Step 3: ID dialogues from context seeds (Table 6), turn- and word-level compositions (Table 7)."""
    def step(client, policy):
        chars = read_items(characters_file, ("kind",), "character_id")
        people = read_items(personas_file, ("character_id", "language", "user_persona"), "persona_id")
        rows, reports = collect_dialogues(people, chars, read_context_seeds(context_seeds), client, policy,
                                          DialogueSettings(n_turn, n_word, kw["seed"]))
        return write_step(out, rows, kw["report"], "dialogues", reports, client)
    _run(step, **kw)


@build.command("split")
@click.option("--characters", "characters_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="characters.jsonl of Step 1.")
@click.option("--personas", "personas_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="personas.jsonl of Step 2.")
@click.option("--dialogues", "dialogues_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="dialogues.jsonl of Step 3.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Benchmark directory: train.jsonl, {subset}.jsonl, stats.tsv (as `rpm bench fetch` writes), "
                   "table2.tsv, provenance.tsv.")
@click.option("--report", required=True, type=click.Path(dir_okay=False),
              help="JSON report: samples per file, empty subsets, unused dialogues with the reason.")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=1 / 3,
              show_default=True, help="Share of ID samples in id_test (the paper: 2,637 of 7,911).")
@click.option("--allow-partial", is_flag=True,
              help="Write the files that have samples when some subsets have none (a weak LLM); their files "
                   "are then absent and the report lists them. [default: stop]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train / test draw.")
def split_cmd(characters_file, personas_file, dialogues_file, out_dir, report, test_fraction, allow_partial, seed):
    """Step 4: the ID train / test split and the three OOD test sets with their 11 subsets."""
    chars = read_items(characters_file, ("kind", "character_domain", "character_name"), "character_id")
    people = read_items(personas_file, ("language", "user_persona"), "persona_id")
    dialogues = read_items(dialogues_file, ("kind", "persona_id", "character_id", "turns"), "dialogue_id")
    files, provenance, rep = split(dialogues, people, chars, SplitSettings(test_fraction, allow_partial, seed),
                                   str(dialogues_file))
    written = write_split(files, provenance, rep, out_dir, report)
    click.echo(f"split: wrote {sum(len(files[f]) for f in written)} samples in {len(written)} files to {out_dir}"
               + (f"; no samples for {', '.join(rep['empty'])}" if rep["empty"] else ""))
