"""Payouts: the batch behind the payout operators, and the helpers the payout sensor uses.

Creating payouts that never pay twice: :mod:`.instructions` (validated items),
:mod:`.sources` (reading and validating a batch), :mod:`.reconcile` (finding payouts of
an earlier attempt), :mod:`.results` and :mod:`.batch` (running a batch through the
provider's idempotent-request engine, :mod:`airflow_provider_stripe.idempotency`: keys,
generations, task state store). Nothing here imports the Stripe SDK at module level.
"""
