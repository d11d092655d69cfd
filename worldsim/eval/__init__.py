"""Evaluation: metrics, rollouts, probes and the report."""
