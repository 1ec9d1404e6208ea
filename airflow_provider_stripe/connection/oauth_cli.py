"""``airflow-stripe-oauth``: finish the Stripe Connect OAuth dance once, print the connection.

``authorize-url`` prints where to send the account owner; ``exchange`` trades the returned code
(with the platform connection's key) for a new connection's JSON, refresh token included: put it
straight into your secrets backend.
"""

from __future__ import annotations

import argparse
import json
import sys

from airflow_provider_stripe.constants import CONN_TYPE, DEFAULT_CONN_ID


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-stripe-oauth", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    url_p = sub.add_parser("authorize-url", help="print the Stripe Connect authorize URL")
    url_p.add_argument("--client-id", required=True)
    url_p.add_argument("--redirect-uri")
    ex_p = sub.add_parser("exchange", help="exchange an authorization code and print the connection")
    ex_p.add_argument("--platform-conn", default=DEFAULT_CONN_ID, help="stripe connection with the platform key")
    ex_p.add_argument("--client-id", required=True)
    ex_p.add_argument("--code", required=True)
    args = parser.parse_args(argv)

    from airflow_provider_stripe.connection import oauth

    if args.command == "authorize-url":
        url, state = oauth.authorize_url(args.client_id, args.redirect_uri)
        print(url)
        print(f"state (check it on the redirect): {state}", file=sys.stderr)
        return 0

    from airflow_provider_stripe.hooks.stripe import StripeHook

    hook = StripeHook(args.platform_conn)
    grant = oauth.exchange_code(hook, args.code)
    platform = hook.config
    extra = {
        "api_key": platform.api_key,
        "webhook_secret": ",".join(platform.webhook_secrets),
        "api_version": platform.api_version,
        # The connected account is reached through the platform's server (Stripe's or the one the admin allowed).
        "base_url": platform.base_url,
        **grant.connection_extra(args.client_id),
    }
    print(json.dumps({"conn_type": CONN_TYPE, "extra": extra}, indent=2))
    print(f"connected account {grant.stripe_user_id} (scope {grant.scope})", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
