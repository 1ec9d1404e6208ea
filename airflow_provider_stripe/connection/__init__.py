"""The Stripe connection: its form fields (:mod:`.form`), the config parsed from it
(:mod:`.config`), the integration contract both follow (:mod:`.contract`), and Stripe Connect
OAuth (:mod:`.oauth`, with the ``airflow-stripe-oauth`` command in :mod:`.oauth_cli`).
"""
