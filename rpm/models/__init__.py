"""Base models as plain Hugging Face directories (safetensors), and the one way to load them."""

from rpm.models.prepare import load_model, load_tokenizer, prepare  # noqa: F401
