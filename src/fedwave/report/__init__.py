"""fedwave.report."""
