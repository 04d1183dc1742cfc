"""The teacher LLM's outputs for the RPM methods: DA's augmented dialogues (Table 22), DPO's rejected
responses (Table 23) and the thinking methods' core-feature traces (Table 15)."""
