"""The classic image builder."""
