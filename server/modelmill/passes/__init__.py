"""Passes: one module per pass; ``registry`` finds them by Olive's names and aliases."""
