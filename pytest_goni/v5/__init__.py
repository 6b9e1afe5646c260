"""The V5 GPT-2 cross-comparison (../shared/seeds/v5-gpt2-gates.md): its statefulness task family,
perplexity as lm-evaluation-harness pins it, the training stream, state checks and data loaders.
The measurement kinds that use them are pytest_goni/measurements/v5_*.py."""
