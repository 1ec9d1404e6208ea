"""Inbound Stripe webhooks: signature verification in :mod:`.signature` (no Stripe SDK, no Airflow)."""
