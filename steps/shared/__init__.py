"""Shared plumbing for the entry points: reading and splitting data (data), the promotion gate
(gate) and its baseline (baseline), metrics, MLflow runs and URIs (tracking), loading from a
folder or the Hub (hub), and the user-error type (errors). No module here is an entry point."""
