"""The one mapping of this project's names (subsets, methods, estimators, shifts, splits, the columns
of our CSVs) onto the row and column labels the paper prints, used by every part of the audit."""

from __future__ import annotations

from collections import OrderedDict

# Our subset names (rpm.core.names.SUBSET_NAMES, in that order) -> Table 20's columns and Table 12's rows.
T20_COLUMN = OrderedDict([
    ("id_test", "ID"), ("user_de", "User G."), ("user_es", "User S."), ("user_zh", "User C."), ("user_ja", "User J."),
    ("user_ko", "User K."), ("char_literature", "Character L."), ("char_film", "Character F."),
    ("char_theater", "Character T."), ("char_gaming", "Character G."), ("dial_turn", "Dialogue T."),
    ("dial_word", "Dialogue W."),
])
T20_AVG = "Avg."
T12_ROW = OrderedDict([
    ("user_de", "ID->DE"), ("user_es", "ID->ES"), ("user_zh", "ID->ZH"), ("user_ja", "ID->JA"), ("user_ko", "ID->KO"),
    ("char_literature", "ID->Literature"), ("char_film", "ID->Film"), ("char_theater", "ID->Theater"),
    ("char_gaming", "ID->Gaming"), ("dial_turn", "ID->TurnLevel"), ("dial_word", "ID->WordLevel"),
])
T12_COLUMN = OrderedDict([("d_user", "D_JS(P_Xu||Q_Xu)"), ("d_character", "D_JS(P_Xa||Q_Xa)"),
                          ("d_dialogue", "D_JS(P_Xd||Q_Xd)"), ("bound", "R-EMID Upper Bound")])
T12_D_COLUMNS = tuple(T12_COLUMN.values())[:3]
T12_BOUND = T12_COLUMN["bound"]
T12_RPM = ("Qwen3-4B", "SFT")  # App. B.2: "a RPM (trained via SFT based on Qwen3-4B)"
# Our method names (rpm.core.names.METHODS) -> Table 20's rows; "Ours" is the paper's E.2 method.
METHOD = OrderedDict([("icl", "ICL"), ("sft", "SFT"), ("da", "DA"), ("dpo", "DPO"), ("rft", "RFT"), ("rl", "RL"),
                      ("thinking_sft", "ThinkingSFT"), ("thinking_rl", "ThinkingRL"), ("corl", "Ours")])
# Our base-model names (config `models:`) -> Table 20's base blocks. Small runs map theirs with --base-map.
BASE = {"qwen3_4b_base": "Qwen3-4B", "llama3_8b": "Meta-Llama3-8B"}
# Table 1: our estimator variants -> rows; our shift groups (perplexity.csv scope=shift) -> columns.
T1_ROW = OrderedDict([("corl", "Ours"), ("wo_corl", "Ours w/o CoRL"), ("wo_reasoning", "Ours w/o Reasoning")])
T1_COLUMN = OrderedDict([("id", "ID"), ("user", "U. Shift"), ("character", "C. Shift"), ("dialogue", "D. Shift")])
# Table 2: RPGBench splits (stats.tsv column `split`) -> rows; stats.tsv columns -> columns.
T2_ROW = OrderedDict([("IDTrain", "IDTrain"), ("IDTest", "IDTest"), ("OOD1Test", "User Shift"),
                      ("OOD2Test", "Character Shift"), ("OOD3Test", "Dialogue Compositional Shift")])
T2_COLUMN = OrderedDict([("samples", "Total Samples"), ("user_personas", "User Personas"),
                         ("agent_characters", "Agent Characters")])
# Table 13 rows: our shift names (correlations.csv scope of figure table13).
T13_ROW = OrderedDict([("user", "User Shift"), ("character", "Character Shift"),
                       ("dialogue", "Dialogue Compositional Shift")])
# Table 14: table14_cost.csv `method` -> rows.
T14_ROW = OrderedDict([("R-EMID", "R-EMID (Ours)"), ("judge", "LLM-as-a-Judge (Claude-3.7-Sonnet)")])
FIG4_PANELS = ("fig4a", "fig4b", "fig4c", "fig4d")
# Figure 5's printed sample sizes (Sec. 3.4 text and caption) -> our fig5a rows (scope "size=N").
FIG5_SIZES = {("(a)", "samples at which both correlations reach high levels"): 30,
              ("(b)", "samples for bound estimation"): 100}
