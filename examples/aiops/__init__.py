"""Scenario 2: AIOps anomaly detection seeded by past tasks (see README.md)."""
