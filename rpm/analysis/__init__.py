"""The analyses of the paper's figures and tables, from the metric and judge CSVs (stage 7).

One module per idea, plain functions: each returns rows (dicts) for a CSV and draws one matplotlib
figure; `rpm analyze <name>` (rpm/analysis/cli.py) writes them under results/analysis/.
"""
