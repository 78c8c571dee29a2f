"""Operator commands for a deployed stack (run with the operator's AWS credentials)."""
