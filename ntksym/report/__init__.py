"""LaTeX reports (issue 7)."""
