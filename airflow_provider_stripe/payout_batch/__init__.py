"""The payout batch behind the payout operators: payouts that never pay twice.

:mod:`.instructions` (validated items), :mod:`.sources` (reading and validating a batch),
:mod:`.recovery` (finding the payouts of an earlier attempt by listing), :mod:`.results`
and :mod:`.batch` (running a batch through the provider's idempotent-request engine,
:mod:`airflow_provider_stripe.idempotency`: keys, generations, task state store).
Nothing here imports the Stripe SDK at module level.
"""
