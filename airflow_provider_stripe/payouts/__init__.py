"""Payouts: the engine behind the payout operators, and the helpers the payout sensor uses.

Creating payouts that never pay twice: :mod:`.instructions` (validated items),
:mod:`.sources` (reading and validating a batch), :mod:`.idempotency` (payout keys,
metadata stamp and listing window, on the provider's general key rules in
:mod:`airflow_provider_stripe.idempotency`), :mod:`.progress` (task state store), :mod:`.reconcile` (finding
payouts of an earlier attempt), :mod:`.results` and :mod:`.batch` (the engine).
Nothing here imports the Stripe SDK at module level.
"""
