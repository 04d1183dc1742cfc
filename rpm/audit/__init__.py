"""The audit against the paper (`rpm audit`): the paper's tables checked against themselves, and this
run's numbers put beside the published ones, written to results/audit.md and results/audit.csv.

Modules, lowest first (import from the module that defines a name; nothing is re-exported here):

- `published`: the published numbers (published.csv, transcribed once; README.md says how each table
  was read).
- `labels`: the one mapping of this project's names onto the paper's row and column labels.
- `consistency`: the paper against itself, with no model and no run (`Finding`s).
- `ours`: this run's numbers, read from the other stages' CSVs, with the tolerance of each.
- `join`: each published cell beside ours, with the difference and a verdict (`run_audit`).
- `report`: the CSV and Markdown writers.
- `cli`: the click command `audit_cmd`, registered by `rpm/cli.py` as `rpm audit`.
"""
