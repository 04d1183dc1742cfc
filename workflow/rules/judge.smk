# Stage 6, judge: LLM-as-a-judge WinRate and PointScore over an ensemble of endpoints.
