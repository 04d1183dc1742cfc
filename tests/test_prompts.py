"""The prompt registry: every paper template loads, is self-consistent, renders, and keeps key paper text."""

from __future__ import annotations

import re
import string

import pytest

from rpm import prompts
from rpm.prompts import PromptTemplate

# Which paper table each template transcribes (its `source` must name it).
EXPECTED_TABLES = {
    "bench_character_initial": "Table 4",
    "bench_character_refine": "Table 4",
    "bench_character_classify": "Table 4",
    "bench_persona_expand_1": "Table 5",
    "bench_persona_expand_2": "Table 5",
    "bench_dialogue_id": "Table 6",
    "bench_dialogue_turn_composition": "Table 7",
    "bench_dialogue_word_composition_1": "Table 7",
    "bench_dialogue_word_composition_2": "Table 7",
    "reasoning_rollout": "Table 15",
    "policy_rollout": "Table 17",
    "reasoning_reward": "Table 18",
    "policy_reward_judge": "Table 19",
    "rpm_response": "Table 21",
    "da_topics": "Table 22",
    "da_dialogue": "Table 22",
    "dpo_rejected": "Table 23",
    "rpm_reward_judge": "Table 24",
    "thinking_response": "Table 25",
}

UNREPLACED = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def parsed_fields(*texts):
    return {f for t in texts if t is not None for _, f, _, _ in string.Formatter().parse(t) if f is not None}


def dummy_fields(t: PromptTemplate) -> dict[str, str]:
    return {p: f"<{p.upper()}>" for p in t.placeholders}


def test_registry_lists_exactly_the_paper_templates():
    # Templates the paper does not print (e.g. the judges') say so in `source`, which starts with "ours".
    paper = [n for n in prompts.names() if not prompts.get(n).source.startswith("ours")]
    assert paper == sorted(EXPECTED_TABLES)


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_template_loads_and_is_consistent(name):
    t = prompts.get(name)
    assert t.name == name
    assert t.description.strip() and t.user.strip()
    assert EXPECTED_TABLES[name] + " " in t.source + " " and "of the paper" in t.source
    assert set(t.placeholders) == parsed_fields(t.system, t.user, t.expected_output)
    assert list(t.placeholders) == sorted(t.placeholders)


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_template_renders_without_leftover_placeholders(name):
    t = prompts.get(name)
    fields = dummy_fields(t)
    messages = t.render(**fields)
    assert [m["role"] for m in messages] == (["system", "user"] if t.system else ["user"])
    texts = [m["content"] for m in messages]
    if t.expected_output is not None:
        texts.append(t.render_expected(**fields))
    for text in texts:
        assert not UNREPLACED.search(text), UNREPLACED.search(text).group()
        assert "{{" not in text and "}}" not in text
    rendered = "\n".join(texts)
    for p in t.placeholders:
        assert f"<{p.upper()}>" in rendered


def test_get_is_cached():
    assert prompts.get("rpm_response") is prompts.get("rpm_response")


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError) as err:
        prompts.get("no_such_template")
    assert "no_such_template" in str(err.value) and "rpm_response" in str(err.value)


def test_missing_field_is_a_key_error_naming_template_and_placeholder():
    t = prompts.get("policy_rollout")
    fields = dummy_fields(t)
    del fields["reasoning_process"], fields["user_persona"]
    with pytest.raises(KeyError) as err:
        t.render(**fields)
    assert "policy_rollout" in str(err.value)
    assert "reasoning_process" in str(err.value) and "user_persona" in str(err.value)
    with pytest.raises(KeyError, match="agent_golden_response"):
        t.render_expected()


def test_extra_field_is_a_type_error_naming_it():
    t = prompts.get("rpm_response")
    with pytest.raises(TypeError, match=r"rpm_response.*user_personna"):
        t.render(**dummy_fields(t), user_personna="typo")
    with pytest.raises(TypeError, match="user_personna"):
        t.render_expected(agent_golden_response="x", user_personna="typo")


def test_fields_of_the_expected_output_are_accepted_by_render():
    t = prompts.get("rpm_response")
    t.render(**dummy_fields(t))  # includes agent_golden_response, used only by the expected output
    assert t.render_expected(agent_golden_response="Hi.") == "<Agent Response>\nHi.\n</Agent Response>"


def test_render_expected_without_expected_output():
    with pytest.raises(ValueError, match="da_topics"):
        prompts.get("da_topics").render_expected()


def test_declared_placeholders_must_match_used():
    text = "source: Table 99 of the paper\ndescription: d\nuser: '{a} and {b}'\nplaceholders: [a, c]\n"
    with pytest.raises(ValueError) as err:
        prompts._parse("bad", "bad.yaml", text)
    message = str(err.value)
    assert "bad.yaml" in message and "'b'" in message and "'c'" in message


def test_single_brace_is_rejected():
    text = "source: s\ndescription: d\nuser: 'a {b'\nplaceholders: []\n"
    with pytest.raises(ValueError, match="bad.yaml"):
        prompts._parse("bad", "bad.yaml", text)


def test_values_with_braces_are_not_reinterpreted():
    t = prompts.get("rpm_response")
    fields = dummy_fields(t) | {"agent_character": "{'character_name': 'Yiruma'}"}
    assert "{'character_name': 'Yiruma'}" in t.render(**fields)[1]["content"]


# --- spot checks against the paper's text -------------------------------------------------------


def test_reasoning_rollout_table15():
    t = prompts.get("reasoning_rollout")
    assert t.system is None
    for phrase in (
        "[Core Features of the Golden Response]",
        "## Format Template of Generated Thought",
        "> System: Please output the thought process in the specified format below.",
        "### Part 1: Restatement of Key Information",
        "### Part 2: Iterative Revision",
        "### Part 3: Final Feature Set of the Golden Response",
        "## Reference Golden Agent Response",
        "- **Current Needs and Personal Alignment**:",
        "### 3. Naturalness within Dialogue Flow",
    ):
        assert phrase in t.user, phrase
    assert t.user.rstrip().endswith("## Generated Thought")
    assert t.extras["golden_withheld_text"] == "Please give your analysis without any given reference response"
    assert t.extras["core_features_marker"] == "[Core Features of the Golden Response]"
    # The core-features block of the format template sits in a code fence.
    assert re.search(r"```\s*\n\[Core Features of the Golden Response\][\s\S]*?```", t.user)
    # Table 16's example output follows the same skeleton and keeps the block in a fence.
    example = t.extras["example_output"]
    assert "Friedrich Nietzsche" in example
    assert re.search(r"```\s*\n\[Core Features of the Golden Response\][\s\S]*?```", example)
    messages = t.render(
        user_persona="p", agent_character="c", str_dialogue_context="d",
        agent_golden_response=t.extras["golden_withheld_text"],
    )
    assert "'''\nPlease give your analysis without any given reference response\n'''" in messages[0]["content"]


def test_policy_rollout_table17():
    t = prompts.get("policy_rollout")
    assert t.system == (
        "Please complete the agent response part after thinking the core features of the golden response to respond."
    )
    assert "Core Features of the Golden Response" in t.user and "{reasoning_process}" in t.user
    assert t.expected_output.startswith("## Agent Response")
    assert t.render_expected(agent_golden_response="Hello.") == "## Agent Response\nHello."
    # The system text is not in the paper: both fields say it comes from the authors' release.
    assert "authors' release" in t.notes and "authors' release" in t.source


def test_reasoning_reward_table18():
    t = prompts.get("reasoning_reward")
    assert t.user.startswith("# Task Completion\n## Input Information\n### User Persona")
    assert t.expected_output == "## Agent Response\n{agent_golden_response}"
    # The prompt printed in Table 18 is the first part of the Table 17 prompt.
    assert prompts.get("policy_rollout").user.startswith(t.user)


def test_policy_reward_judge_table19():
    t = prompts.get("policy_reward_judge")
    assert t.expected_output == "100%"
    assert "100%" in t.user
    assert "Reference Golden Response: {expected_golden_response}" in t.user
    assert "Candidate Response: {y}" in t.user
    assert t.user.rstrip().endswith("Percentage:")
    assert t.render_expected() == "100%"


def test_rpm_response_table21():
    t = prompts.get("rpm_response")
    assert t.system == "You are serving for the user with the given persona. Please act as the given agent character"
    messages = t.render(user_persona="P", agent_character="C", str_dialogue_context="D")
    assert messages[0] == {"role": "system", "content": t.system}
    assert messages[1]["content"] == (
        "<User Persona>\nP\n</User Persona>\n<Agent Character>\nC\n</Agent Character>\n"
        "<Dialogue Context>\nD\n</Dialogue Context>"
    )
    assert t.expected_output.endswith("</Agent Response>")


def test_data_augmentation_table22():
    topics, dialogue = prompts.get("da_topics"), prompts.get("da_dialogue")
    assert '"possibility_1": ""' in topics.render(user_persona="p", agent_character="c")[0]["content"]
    assert "Chat History Context Seed (for background reference only)" in dialogue.user
    assert "{context_seed}" in dialogue.user


def test_dpo_rejected_table23():
    t = prompts.get("dpo_rejected")
    assert "<User Persona>The user persona is unknown.</User Persona>" in t.user
    assert "<Agent Character>The agent character is unknown.</Agent Character>" in t.user
    assert t.placeholders == ("str_dialogue_context",)


def test_rpm_reward_judge_table24():
    t = prompts.get("rpm_reward_judge")
    assert t.expected_output == "100%"
    assert "matches 100% with the given user persona and agent character" in t.user
    assert "Candidate Response: {rollout_response}" in t.user


def test_thinking_table25():
    t = prompts.get("thinking_response")
    thought = t.extras["example_thought"]
    assert thought.startswith("## I. Content Characteristics")
    assert "## II. Style Characteristics" in thought
    # Same headings as the core-features block of Table 15.
    headings = [line for line in thought.splitlines() if line.startswith("#")]
    skeleton = prompts.get("reasoning_rollout").user.split("[Core Features of the Golden Response]")[1]
    assert headings == [line.rstrip() for line in skeleton.splitlines() if line.startswith("#")][: len(headings)]


def test_benchmark_templates_tables_4_to_7():
    initial = prompts.get("bench_character_initial")
    assert {"num_domains", "user_persona", "user_chat_history"} <= set(initial.placeholders)
    refine = prompts.get("bench_character_refine").render(
        character_name="Yiruma", character_description="d", character_domain="Arts"
    )[0]["content"]
    assert '{ "Yiruma": { "character_source": ""' in refine
    assert "Real-Life Role or a Fictional Role" in prompts.get("bench_character_classify").user
    assert "- Korean" in prompts.get("bench_persona_expand_1").user
    assert "{step1_ReversedUserPersona}" in prompts.get("bench_persona_expand_2").user
    assert "7. [Important!]" in prompts.get("bench_dialogue_id").user
    assert '"agent_response_8":""' in prompts.get("bench_dialogue_turn_composition").user
    assert "{str_reference_user_chat_history}" in prompts.get("bench_dialogue_word_composition_1").user
    assert "{str_candidate_variants}" in prompts.get("bench_dialogue_word_composition_2").user


def test_templates_are_immutable():
    t = prompts.get("reasoning_rollout")
    with pytest.raises(AttributeError):
        t.user = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.extras["core_features_marker"] = "x"  # type: ignore[index]
