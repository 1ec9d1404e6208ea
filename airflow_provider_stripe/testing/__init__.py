"""Helpers for running the provider against a local Stripe-compatible server (localstripe).

Nothing here talks to the real Stripe, and nothing here is imported by the hook,
operators, sensors or triggers: these are for demos and tests only.
"""
