"""The engine: plans, runs passes, emits events. Knows nothing about the CLI or LSP."""
