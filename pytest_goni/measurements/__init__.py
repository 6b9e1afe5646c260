"""measurements."""

from . import (  # noqa: F401,E402  (registration happens on import)
    context_scaling,
    decode,
    memory,
    model_stats,
    op_bench,
    prefill,
    recall,
    roofline,
    synthetic_task,
    tiers,
    tokenizer,
    train_lm,
    v5_compare,
    v5_params,
    v5_pretrained,
    v5_state,
)
