"""Bentos as OCI artifacts: push to and pull from any OCI Distribution registry (Harbor, GHCR, ECR, ...)."""
