"""Base models: a model spec (hub, local, a GGUF file inside a package, tiny random) made a plain
Hugging Face directory. Loading any model directory is `rpm.runtime.load`."""
