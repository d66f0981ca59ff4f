"""Shared plumbing for the entry points: reading and splitting data (data) from a file, URI or
the Hub (sources), the promotion gate (gate) and its baseline (baseline), scoring a registered
model (scoring), metrics, MLflow runs and URIs (tracking), loading from a folder or the Hub
(hub), and the user-error type (errors). No module here is an entry point."""
