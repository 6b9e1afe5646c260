"""plugin (placeholder until the core lands)."""
