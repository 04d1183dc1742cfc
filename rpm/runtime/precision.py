"""The precision policy: float32 or bfloat16 for each use of a model, set once in the config (`precision`).

    generation  RPM responses (`rpm generate`), reasoning traces (`rpm reason`), RFT's sampled rollouts
    training    SFT, DPO and GRPO (TRL; GRPO's rollouts too) and the reward models they call
    scoring     the estimator's log-prob matrices (`rpm logprobs`, `rpm score`), from which R-EMI is computed

A bfloat16 use loads the weights in bfloat16. Training keeps its LoRA adapters in float32 (peft casts
them up) and its loss in float32 (transformers upcasts the logits). On CPUs with bf16 matrix units
bfloat16 matmuls run ~3-5x faster than float32 (benchmarks/rpm_speed.py measures both in one run);
which default each use gets was chosen from that benchmark and benchmarks/precision.py (README,
"Precision"). "auto" is bfloat16 only where the machine multiplies it natively (rpm.core.hardware).
"""

from __future__ import annotations

from rpm.core.hardware import resolve_precision
from rpm.core.names import PRECISION_USES as USES, PRECISIONS


def dtype_of(precision: dict | str | None, use: str) -> str:
    """The dtype name for `use` from a precision mapping ({use: dtype}), a single dtype, or None (float32);
    "auto" is resolved on this machine (rpm.core.hardware)."""
    if use not in USES:
        raise ValueError(f"unknown precision use {use!r}; expected one of {list(USES)}")
    value = precision.get(use, "float32") if isinstance(precision, dict) else (precision or "float32")
    if value not in PRECISIONS:
        raise ValueError(f"precision.{use}: {value!r} is not one of {list(PRECISIONS)}")
    return resolve_precision(value)


def trainer_precision_args(dtype: str, on_gpu: bool) -> dict:
    """TRL/transformers TrainingArguments for training in `dtype`. On a GPU, bfloat16 also turns on autocast
    (`bf16=True`, the paper's setting). On CPU the weights are already bfloat16 and autocast only adds casts
    (measured slower), so it stays off."""
    return {"bf16": dtype == "bfloat16" and on_gpu}
