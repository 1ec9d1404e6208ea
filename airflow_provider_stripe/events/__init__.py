"""Inbound Stripe events: webhook signatures, the API-server endpoint, ``stripe://`` assets."""
