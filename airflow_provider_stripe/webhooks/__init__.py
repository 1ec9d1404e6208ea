"""Inbound Stripe webhooks: signature verification in :mod:`.signature` (no Stripe SDK, no
Airflow) and the endpoint the plugin mounts on the API server in :mod:`.endpoint`."""
