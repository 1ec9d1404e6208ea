"""Run the provider against a local Stripe: localstripe behind a Stripe-faithful front.

Public, for users' local runs, the demo and the tests; its third-party needs come with the
``[local]`` extra (``pip install "airflow-provider-stripe[local]"``). Nothing here talks to
the real Stripe, and nothing here is imported by the hook, operators, sensors or triggers.

* :mod:`.localstripe` -- ``python -m airflow_provider_stripe.testing.localstripe``: serve
  localstripe and the front on 127.0.0.1 (``run_localstripe()`` from Python);
* :mod:`.front` -- the front: Stripe's list semantics and ``created`` filters,
  ``/v1/account``, a request log; a route table to extend;
* :mod:`.settlement` -- a simulated bank that settles pending payouts;
* :mod:`.connection` -- a ``stripe`` connection in an environment variable.
"""
