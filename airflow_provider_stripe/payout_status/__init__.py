"""Watching payouts until they settle, shared by the payout sensor and its trigger.

:mod:`.watch` (what a payout's status means for the task: wait, succeed or fail, with a
grace period) and :mod:`.lookup` (fetching the watched payouts, sync and async, 100 per
listing page). Nothing here imports the Stripe SDK at module level.
"""
