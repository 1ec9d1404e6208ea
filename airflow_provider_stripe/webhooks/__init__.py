"""Inbound Stripe webhooks.

Signature verification in :mod:`.signature` (no Stripe SDK) and the endpoint the plugin
mounts on the API server in :mod:`.endpoint`.
"""
