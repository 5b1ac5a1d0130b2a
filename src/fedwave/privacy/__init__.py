"""fedwave.privacy."""
