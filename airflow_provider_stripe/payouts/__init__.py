"""Payouts that never pay twice, and watching them settle; the module map is in docs/architecture.md."""
