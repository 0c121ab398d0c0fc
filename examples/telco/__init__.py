"""Scenario 3: Telco churn, recommender seeds versus a cold search (see README.md)."""
