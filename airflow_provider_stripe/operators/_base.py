"""Plumbing shared by every Stripe operator: hook, SDK calls, idempotency, dry runs, results.

Operators that move money (charges, refunds, payouts) derive from
:class:`StripeMoneyOperator`, which gives them, in this order of use:

1. input validation is theirs (:mod:`airflow_provider_stripe.validation`), before anything else;
2. :meth:`~StripeMoneyOperator.resolve_idempotency_key`: the user's key, or one derived
   from the task instance (dag_id, run_id, task_id, map_index) so an Airflow retry of
   the same task replays Stripe's first answer instead of moving money twice;
3. :meth:`~StripeMoneyOperator.dry_run_result` when ``dry_run=True``: log what would be
   sent, send nothing;
4. :meth:`~StripeMoneyOperator.guard_live_mode`: refuse live keys unless the connection
   allows them;
5. :meth:`~StripeBaseOperator.call`: the SDK call, its errors turned into
   :class:`~airflow_provider_stripe.errors.StripeRequestError`;
6. :meth:`~StripeMoneyOperator.log_movement` and :func:`summarize`: one log line and a
   small JSON-safe result for XCom (never a whole Stripe object, never a key).

Nothing here imports the Stripe SDK at module level (DAG-parse cost).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_stripe.connection_form import DEFAULT_CONN_ID
from airflow_provider_stripe.errors import redact
from airflow_provider_stripe.validation import format_amount

if TYPE_CHECKING:
    from airflow.sdk import Context
    from stripe import StripeClient

    from airflow_provider_stripe.hooks.stripe import StripeHook

T = TypeVar("T")

IDEMPOTENCY_KEY_PREFIX = "airflow-"
_JSON_SCALARS = (str, int, float, bool, type(None))


def derive_idempotency_key(context: Context, *parts: object) -> str:
    """A Stripe idempotency key that is the same for every try of one task instance.

    Built from the task instance's dag_id, run_id, task_id and map_index (not its
    try_number) plus any ``parts`` that tell apart several requests made by one task
    (e.g. an operation name or a batch item's reference). Hashed, so it is short
    (72 characters, Stripe allows 255), reveals nothing and has no odd characters.

    Stripe keeps a key for at least 24 hours: a retry within that time gets the first
    attempt's stored answer; a retry with *changed* parameters gets an
    ``idempotency_error`` (pass an explicit ``idempotency_key`` to really send again).
    """
    ti = context["ti"]
    identity = [ti.dag_id, ti.run_id, ti.task_id, ti.map_index, *(str(p) for p in parts)]
    digest = hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()
    return IDEMPOTENCY_KEY_PREFIX + digest


def to_plain(obj: Any) -> Any:
    """A Stripe object (or anything mapping-like) as plain dicts and lists."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else obj


def _scalar(value: Any) -> Any:
    """Keep JSON scalars; an expanded object becomes its id; anything else is dropped."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, Mapping):
        return value.get("id")
    return None


def summarize(obj: Any, fields: Sequence[str], **extra: Any) -> dict[str, Any]:
    """A small JSON-serialisable dict of ``fields`` picked from a Stripe object, plus ``extra``.

    Missing fields are ``None`` (Stripe-compatible servers differ in what they return);
    an expanded sub-object is reduced to its id.
    """
    data = to_plain(obj)
    out = {name: _scalar(data.get(name)) for name in fields}
    out.update(extra)
    return out


class StripeBaseOperator(BaseOperator):
    """Base for Stripe operators: a :class:`StripeHook` per task, and guarded SDK calls.

    :param stripe_conn_id: the ``stripe`` connection to use.
    :param account_id: act on this Stripe Connect account (``acct_...``, sent as
        ``Stripe-Account``) instead of the connection's.
    """

    template_fields: Sequence[str] = ("account_id",)

    def __init__(self, *, stripe_conn_id: str = DEFAULT_CONN_ID, account_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stripe_conn_id = stripe_conn_id
        self.account_id = account_id

    @cached_property
    def hook(self) -> StripeHook:
        """The task's hook, built after templates are rendered (so ``account_id`` is final)."""
        from airflow_provider_stripe.hooks.stripe import StripeHook

        return StripeHook(self.stripe_conn_id, account_id=self.account_id or None)

    def get_client(self) -> StripeClient:
        """The connection's rate-limited, retrying ``StripeClient`` for this task's account."""
        return self.hook.get_client()

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call; a Stripe error becomes a :class:`StripeRequestError` naming ``operation``."""
        import stripe

        from airflow_provider_stripe.errors import from_stripe_error

        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            error = from_stripe_error(exc, operation)
            if error.error_type == "idempotency_error" or error.code == "idempotency_key_in_use":
                self.log.error(
                    "Stripe refused the idempotency key: a request with this key was already made with other "
                    "parameters (a cleared task re-run with changed inputs?) or is still in flight. Nothing new "
                    "was sent. To send a new request on purpose, pass a new idempotency_key."
                )
            raise error from exc


class StripeMoneyOperator(StripeBaseOperator):
    """Base for operators that move money: dry runs, live-mode guard, idempotency, one log line.

    :param dry_run: validate and log what would be sent, send nothing, return
        ``{"dry_run": True, ...}``.
    :param idempotency_key: Stripe idempotency key for the request. Default: derived
        from the task instance, so retries of the same task never move money twice.
        An explicit key is used as is: in a mapped task, template it per item (e.g.
        ``"order-{{ ti.map_index }}"``) or leave the default.
    """

    template_fields: Sequence[str] = (*StripeBaseOperator.template_fields, "idempotency_key")

    def __init__(self, *, dry_run: bool = False, idempotency_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Not `self.dry_run`: BaseOperator.dry_run() is a method (render templates only).
        self.is_dry_run = dry_run
        self.idempotency_key = idempotency_key

    def resolve_idempotency_key(self, context: Context, *parts: object) -> str:
        """The explicit ``idempotency_key`` if set, else :func:`derive_idempotency_key`."""
        if self.idempotency_key:
            return str(self.idempotency_key)
        return derive_idempotency_key(context, *parts)

    def guard_live_mode(self, action: str = "move money") -> None:
        """Raise :class:`LiveModeNotAllowedError` for a live key the connection does not allow."""
        self.hook.ensure_live_mode_allowed(action)

    def dry_run_result(self, operation: str, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Log the request that a real run would send and return a dict saying it was a dry run.

        The connection is still read and validated (no request is made), so a dry run
        also reports whether the key is live and whether a real run would be allowed.
        """
        cfg = self.hook.config
        live_allowed = not cfg.livemode or cfg.allow_live_mode
        self.log.info(
            "DRY RUN, nothing sent: would call Stripe %s with %s (idempotency key %s, account %s, %s%s)",
            operation,
            redact(json.dumps(params, sort_keys=True, default=str)),
            idempotency_key,
            self.hook.account_id or "platform",
            cfg.key_kind,
            "" if live_allowed else "; a real run would be REFUSED: the connection does not allow live mode",
        )
        return {
            "dry_run": True,
            "operation": operation,
            "params": json.loads(json.dumps(params, default=str)),
            "idempotency_key": idempotency_key,
            "account_id": self.hook.account_id,
            "livemode": cfg.livemode,
            "live_mode_allowed": live_allowed,
        }

    def log_movement(self, verb: str, amount: int, currency: str, object_id: str, **details: Any) -> None:
        """One line per money movement: ``Refunded 5.00 EUR: re_123 (charge=ch_1, status=succeeded)``."""
        extra = ", ".join(f"{k}={v}" for k, v in details.items() if v is not None)
        self.log.info("%s %s: %s%s", verb, format_amount(amount, currency), object_id, f" ({extra})" if extra else "")
