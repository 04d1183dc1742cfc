"""What this machine's arithmetic can do, for the precision policy's "auto" (rpm.runtime.precision).

A CPU with AVX512-BF16 or AMX multiplies bfloat16 3-5x faster than float32; one with AVX2 only (e.g. AMD
Zen 3) has no bf16 kernels, and torch's emulated bfloat16 matmul runs ~30x slower than its float32 one
there (benchmarks/bf16_units.py measures both in one run). "auto" is resolved where the job runs, so a
cluster's GPU node and a laptop each get their fast dtype from one config.
"""

from __future__ import annotations

from rpm.core.names import PRECISIONS


def native_bf16() -> bool:
    """Whether this machine multiplies bfloat16 natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or
    AMX tiles (torch's own capability checks, on which its oneDNN kernels dispatch)."""
    import torch  # here, not at the top: rpm.core stays importable without loading torch (`rpm --help`)

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(value: str) -> str:
    """The dtype name for a precision value: float32 and bfloat16 as given, "auto" by native_bf16()."""
    if value not in PRECISIONS:
        raise ValueError(f"{value!r} is not one of {list(PRECISIONS)}")
    if value == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return value
