"""fedwave.codecs."""
