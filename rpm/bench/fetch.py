"""`rpm bench fetch`: RPGBench from the hub or a local copy, normalised to one file per subset.

Sources:
- `hub:YongqiLi/RPGBench[@revision]`: the published dataset (needs the network; the paper config).
- a local JSON file whose keys are the splits, as the authors' scripts read it.
- a local directory holding `IDTrain.jsonl`, `IDTest.jsonl`, `OOD1Test.jsonl`, ... (one per split).
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from rpm.bench.load import read_authors_json, read_jsonl
from rpm.bench.schema import BenchRecordError, Sample
from rpm.bench.subsets import subset, subset_for_tag
from rpm.core.errors import RpmInputError
from rpm.core.names import BENCH_FILES, SPLITS
from rpm.io import write_jsonl, write_text


def read_source(source: str) -> dict[str, list[Sample]]:
    """Read any supported source into {split: samples}."""
    if source.startswith("hub:"):
        return read_source(str(_download_from_hub(source[len("hub:"):])))
    path = Path(source)
    if path.is_file():
        return read_authors_json(path)
    if path.is_dir():
        found = {s: path / f"{s}.jsonl" for s in SPLITS if (path / f"{s}.jsonl").is_file()}
        if found:
            return {s: read_jsonl(p) for s, p in found.items()}
        jsons = sorted(path.glob("*.json"))
        if len(jsons) == 1:
            return read_authors_json(jsons[0])
        raise FileNotFoundError(
            f"{path}: expected one JSON file keyed by split, or per-split files {[s + '.jsonl' for s in SPLITS]}")
    raise FileNotFoundError(f"{source}: no such file or directory (a hub source is written 'hub:OWNER/NAME')")


def _download_from_hub(repo: str) -> Path:
    """Download the dataset's JSON files (GPU/online machines; the default run never calls this)."""
    from huggingface_hub import snapshot_download

    repo_id, _, revision = repo.partition("@")
    return Path(snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision or None,
                                  allow_patterns=["*.json", "*.jsonl"]))


def normalise(splits: dict[str, list[Sample]], source: str) -> dict[str, list[Sample]]:
    """Map the five splits onto `train` plus the 12 stable subset files; every subset must be present."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise RpmInputError(f"{source}: missing split(s) {missing}")
    files: dict[str, list[Sample]] = {f: [] for f in BENCH_FILES}
    files["train"] = list(splits["IDTrain"])
    files["id_test"] = list(splits["IDTest"])
    for split in ("OOD1Test", "OOD2Test", "OOD3Test"):
        for i, s in enumerate(splits[split]):
            if s.subset_tag is None:
                raise BenchRecordError("OOD records need a subset_tag", file=f"{source} [{split}][{i}]",
                                       sample_id=s.sample_ID, field="subset_tag")
            try:
                files[subset_for_tag(s.subset_tag, split)].append(s)
            except ValueError as e:
                raise BenchRecordError(str(e), file=f"{source} [{split}][{i}]", sample_id=s.sample_ID,
                                       field="subset_tag") from None
    empty = [f for f, rows in files.items() if not rows]
    if empty:
        raise RpmInputError(f"{source}: no records for subset(s) {empty}")
    return files


def subsample(files: dict[str, list[Sample]], *, max_train: int | None, max_per_subset: int | None,
              seed: int) -> dict[str, list[Sample]]:
    """Seeded subsample that keeps the source order (for configs smaller than the full benchmark)."""
    out = {}
    for name, rows in files.items():
        limit = max_train if name == "train" else max_per_subset
        if limit is None or len(rows) <= limit:
            out[name] = rows
            continue
        keep = set(random.Random(f"{seed}:{name}").sample(range(len(rows)), limit))
        out[name] = [r for i, r in enumerate(rows) if i in keep]
    return out


def stats_table(files: dict[str, list[Sample]]) -> str:
    """Table 2 of the paper, per file: samples, unique user personas, unique agent characters."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["file", "split", "shift", "samples", "user_personas", "agent_characters"])
    for name, rows in files.items():
        split, shift = ("IDTrain", "id") if name == "train" else (subset(name).split, subset(name).shift)
        w.writerow([name, split, shift, len(rows), len({r.user_persona for r in rows}),
                    len({r.agent_character.character_name for r in rows})])
    return buf.getvalue()


def write_bench(files: dict[str, list[Sample]], out_dir: str | Path) -> None:
    """Write `{file}.jsonl` for train and the 12 subsets, and `stats.tsv`, each atomically."""
    out_dir = Path(out_dir)
    for name in BENCH_FILES:
        write_jsonl(out_dir / f"{name}.jsonl", (s.to_dict() for s in files[name]))
    write_text(out_dir / "stats.tsv", stats_table(files))


def fetch(source: str, out_dir: str | Path, *, max_train: int | None = None, max_per_subset: int | None = None,
          seed: int = 0) -> dict[str, list[Sample]]:
    files = normalise(read_source(source), source)
    files = subsample(files, max_train=max_train, max_per_subset=max_per_subset, seed=seed)
    write_bench(files, out_dir)
    return files
