"""Bridges to tools users already have; each is imported on its own, only when used."""
