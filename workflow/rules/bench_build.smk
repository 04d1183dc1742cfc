# Optional: the RPGBench construction pipeline (Appendix A, Steps 1-4) against an LLM endpoint.
