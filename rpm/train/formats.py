"""What an RPM reads and writes (Table 21), and the thinking variant (Table 25).

Prompt: the Table 21 template with the RPM system text. Target: "<Agent Response>\\n...\\n</Agent
Response>"; generation stops at the closing tag. The thinking methods first write their thought (the
core-features block of Table 15 / Table 25), then the same tagged response; only the response is
evaluated.
"""

from __future__ import annotations

import re

from rpm import prompts
from rpm.bench.schema import Sample
from rpm.prompts import RESPONSE_CLOSE as CLOSE, RESPONSE_OPEN as OPEN


def rpm_messages(sample: Sample, *, thinking: bool = False) -> list[dict]:
    name = "thinking_response" if thinking else "rpm_response"
    return prompts.get(name).render(**sample.prompt_fields(with_golden=False))


def response_block(response: str) -> str:
    return f"{OPEN}\n{response.strip()}\n{CLOSE}"


def thinking_target(thought: str, response: str) -> str:
    return f"{thought.strip()}\n\n{response_block(response)}"


def parse_generation(raw: str) -> tuple[str, str]:
    """Split a generation into (thought, response). The response is the text inside the tags; a
    missing closing tag (the generation hit its token limit) keeps everything after the opening tag."""
    start = raw.find(OPEN)
    if start < 0:
        # No opening tag: the whole text is the answer (what an untrained or ICL model often does).
        return "", raw.split(CLOSE)[0].strip()
    thought = raw[:start].strip()
    rest = raw[start + len(OPEN):]
    return thought, rest.split(CLOSE)[0].strip()


_WS = re.compile(r"\s+")


def normalise_space(text: str) -> str:
    return _WS.sub(" ", text).strip()
