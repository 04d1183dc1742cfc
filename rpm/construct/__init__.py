"""`rpm bench build`: the RPGBench construction pipeline of Appendix A.1 (Steps 1-4, Tables 4-7).

One module per step, each reading and writing files, each LLM answer cached by the shared client
(rpm.llm.client.ChatClient) and checked by the shared answer helpers (rpm.llm.answers):

    characters  Step 1: agent characters from seed personas (initial collection, refinement with an
                optional Retriever, real / fictional classification)          -> characters.jsonl
    personas    Step 2: user personas in six linguistic-cultural backgrounds  -> personas.jsonl
    dialogues   Step 3: ID 4-round dialogues, turn- and word-level compositions -> dialogues.jsonl
    split       Step 4: train + the 12 evaluation subsets + stats.tsv, as `rpm bench fetch` lays them out

Every step writes a JSON report: per sub-task the items asked, accepted, repaired and rejected, with
the reason and number of attempts per item, and the endpoint ledger (calls, cache hits, tokens).
"""
