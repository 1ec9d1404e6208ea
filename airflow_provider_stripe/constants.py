"""Names every module needs, in a module that imports nothing (DAG-parse cost)."""

CONN_TYPE = "stripe"
HOOK_NAME = "Stripe"
DEFAULT_CONN_ID = "stripe_default"

#: Where the plugin mounts the webhook endpoint on the API server.
WEBHOOK_URL_PREFIX = "/stripe"

#: The Airflow config option (``[stripe] allowed_base_urls``) listing the base URLs a
#: connection may send its key to besides Stripe's; see :mod:`airflow_provider_stripe.config`.
ALLOWED_BASE_URLS_SECTION = "stripe"
ALLOWED_BASE_URLS_KEY = "allowed_base_urls"

#: The rate limiter's default storage: each process keeps its own limit.
MEMORY_STORAGE = "memory://"
