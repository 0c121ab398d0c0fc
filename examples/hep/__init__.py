"""Scenario 1: HEP particle trajectory reconstruction across three sites (see README.md)."""
