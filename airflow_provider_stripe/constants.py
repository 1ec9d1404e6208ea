"""Names every module needs, in a module that imports nothing (DAG-parse cost)."""

CONN_TYPE = "stripe"
HOOK_NAME = "Stripe"
DEFAULT_CONN_ID = "stripe_default"

#: Where the plugin mounts the webhook endpoint on the API server.
WEBHOOK_URL_PREFIX = "/stripe"

#: Where the plugin mounts the payout-batch view (:mod:`airflow_provider_stripe.plugins.payout_view`).
PAYOUT_VIEW_URL_PREFIX = "/stripe-payouts"

#: The Airflow config option (``[stripe] allowed_base_urls``) listing the base URLs a
#: connection may send its key to besides Stripe's; see :mod:`airflow_provider_stripe.connection.config`.
ALLOWED_BASE_URLS_SECTION = "stripe"
ALLOWED_BASE_URLS_KEY = "allowed_base_urls"

#: The admin options (same ``[stripe]`` section) that let connections set rate limits above
#: the contract's; see :func:`airflow_provider_stripe.connection.config.rate_limit_cap`.
MAX_RATE_LIMIT_PER_MINUTE_KEY = "max_rate_limit_per_minute"
MAX_RATE_LIMIT_PER_HOUR_KEY = "max_rate_limit_per_hour"

#: Stripe's largest list page (``limit``): every list request asks for it unless a task says otherwise.
PAGE_SIZE = 100

#: How far back Stripe keeps events: ``/v1/events`` lists the last 30 days only.
EVENT_RETENTION_S = 30 * 86_400

#: The rate limiter's default storage: each process keeps its own limit.
MEMORY_STORAGE = "memory://"
