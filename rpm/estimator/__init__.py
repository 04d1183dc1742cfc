"""The CoRL estimator of R-EMI (Section 3.3, Appendix D): reasoning generator q_phi1 and policy model
q_phi2, cold-started by SFT on teacher traces and co-evolved with GRPO; plus the Table 1 ablations."""
