"""Payouts that never pay twice, and watching them settle.

:mod:`.instructions` (validated items), :mod:`.sources` (reading and validating a batch),
:mod:`.limits` (per-batch caps), :mod:`.recovery` (finding the payouts of an earlier attempt by
listing), :mod:`.batch` and :mod:`.results` (running a batch, item by item, and its results),
:mod:`.summary` (the approval summary); :mod:`.watch` and :mod:`.lookup` (what a payout's
status means for the sensor and its trigger, and fetching it). Nothing here imports the Stripe
SDK at module level.
"""
