"""Instructor tools: stubs from reference/, the release, solutions, validation."""
