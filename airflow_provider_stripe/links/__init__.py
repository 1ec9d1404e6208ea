"""Operator extra links: :mod:`.dashboard` (the Stripe Dashboard page of a task's result)."""
