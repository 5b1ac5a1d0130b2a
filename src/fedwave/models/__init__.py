"""fedwave.models."""
