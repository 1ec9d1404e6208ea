"""Names every module needs, in a module that imports nothing (DAG-parse cost)."""

CONN_TYPE = "stripe"
HOOK_NAME = "Stripe"
DEFAULT_CONN_ID = "stripe_default"

#: Where the plugin mounts the webhook endpoint on the API server.
WEBHOOK_URL_PREFIX = "/stripe"

#: The rate limiter's default storage: each process keeps its own limit.
MEMORY_STORAGE = "memory://"
