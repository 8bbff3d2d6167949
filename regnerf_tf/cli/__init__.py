"""Command-line entry points (absl apps)."""
