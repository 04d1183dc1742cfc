"""The model runtime: load a prepared or trained model, embed texts, generate, and score log-probs.

Training, the estimator, the metrics and the judge all load and run models through this package, so
no stage reaches into another stage's files. torch and transformers are imported inside the functions
that need them: `rpm --help` and the table-only verbs stay fast.
"""
