"""The one OpenAI-compatible client (cached, with a ledger), the local server on loopback, and the
parsing of JSON answers with repair and retry: used by the teacher, the benchmark builder and the judges."""
