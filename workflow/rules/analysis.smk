# Stage 7, analysis: correlations, the paper's figures and tables, the audit.
