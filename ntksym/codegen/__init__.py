"""Code generation: standalone kernel modules (filled in by issue 6)."""
