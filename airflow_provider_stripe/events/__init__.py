"""Inbound Stripe events: webhook signature verification (:mod:`.signature`, no Stripe SDK)
and signing secrets (:mod:`.secrets`), the endpoint the plugin mounts on the API server
(:mod:`.endpoint`), and the ``stripe://`` assets events update (:mod:`.assets`).
"""
