"""Plumbing shared by every Stripe operator: hook, idempotency, dry runs, live-mode guard, results."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_stripe.compat import as_dict
from airflow_provider_stripe.constants import DEFAULT_CONN_ID

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import BaseOperatorLink, Context

    from airflow_provider_stripe.errors import StripeRequestError
    from airflow_provider_stripe.hooks.idempotency import IdempotentRequests
    from airflow_provider_stripe.hooks.stripe import StripeHook

T = TypeVar("T")

_JSON_SCALARS = (str, int, float, bool, type(None))


def _reference(parts: Sequence[object]) -> str:
    return "/".join(str(p) for p in parts)


def _scalar(value: Any) -> Any:
    """Keep JSON scalars; an expanded object becomes its id; anything else is dropped."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, Mapping):
        return value.get("id")
    return None


def _dashboard_links(_operator: Any) -> tuple[BaseOperatorLink, ...]:
    """The Stripe Dashboard link, imported when Airflow reads it (serializing the DAG, after a task), not
    when a DAG file imports the operator. Airflow reads ``operator_extra_links`` properties."""
    from airflow_provider_stripe.links.dashboard import StripeDashboardLink

    return (StripeDashboardLink(),)


DASHBOARD_LINKS = property(_dashboard_links)


def _renders_to_itself(text: str, env: jinja2.Environment, operator: BaseOperator) -> bool:
    from jinja2.nativetypes import NativeEnvironment

    markers = (env.variable_start_string, env.block_start_string, env.comment_start_string, "\n", "\r")
    prefixes = tuple(p for p in (env.line_statement_prefix, env.line_comment_prefix) if p)
    return (
        not isinstance(env, NativeEnvironment)
        and not any(marker in text for marker in markers + prefixes)
        and not text.endswith(tuple(operator.template_ext))
    )


def summarize(obj: Any, fields: Sequence[str], **extra: Any) -> dict[str, Any]:
    """A small JSON-serialisable dict of ``fields`` of a Stripe object (missing: ``None``; sub-objects: ids)."""
    data = as_dict(obj)
    out = {name: _scalar(data.get(name)) for name in fields}
    out.update(extra)
    return out


class StripeBaseOperator(BaseOperator):
    """Base for Stripe operators: a :class:`StripeHook` per task (its ``requests`` send everything).

    :param stripe_conn_id: the ``stripe`` connection to use.
    :param account_id: act on this Connect account (``acct_...``, sent as ``Stripe-Account``).
    """

    template_fields: Sequence[str] = ("account_id",)

    def __init__(self, *, stripe_conn_id: str = DEFAULT_CONN_ID, account_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stripe_conn_id = stripe_conn_id
        self.account_id = account_id

    @cached_property
    def hook(self) -> StripeHook:
        """Built after templates are rendered (so ``account_id`` is final)."""
        from airflow_provider_stripe.hooks.stripe import StripeHook

        return StripeHook(self.stripe_conn_id, account_id=self.account_id or None)

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Airflow's rendering, minus Jinja for strings it would return unchanged.

        Jinja compiles every string it renders, which made a large ``payouts`` list of literals slow to
        start (benchmarks/batch_scale.py measures the set-up). A string with no template marker, no newline (Jinja
        normalizes them and drops a trailing one) and no template file extension renders to itself; a
        native environment (``render_template_as_native_obj``) still renders all (``"42"`` becomes ``42``).
        """
        if isinstance(content, str) and jinja_env is not None and _renders_to_itself(content, jinja_env, self):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def checked_account(self) -> str | None:
        """The account this task acts on (``None``: the platform), validated before any path or request uses it."""
        hook = self.hook  # building it checks the task's account_id
        _ = hook.config  # reading it checks the connection's
        return hook.account_id

    def _explain(self, error: StripeRequestError) -> StripeRequestError:
        """Log what to do when Stripe refused the idempotency key itself; return ``error``."""
        if error.error_type == "idempotency_error" or error.code == "idempotency_key_in_use":
            self.log.error(
                "Stripe refused the idempotency key: a request with this key was already made with other "
                "parameters (a cleared task re-run with changed inputs?) or is still in flight. Nothing new "
                "was sent. To send a new request on purpose, pass a new idempotency_key."
            )
        return error


class StripeMoneyOperator(StripeBaseOperator):
    """Base for operators that move money: dry runs, live-mode guard, idempotency, one log line.

    :param dry_run: validate and log what would be sent, send nothing, return ``{"dry_run": True, ...}``.
    :param idempotency_key: default derived from the task instance, so retries never move money twice; an
        explicit key is used as is (template it per mapped item); after a definitive refusal: ``<key>-retry<n>``.

    A definitive refusal fails the task without retries; a lost answer raises a retryable error reusing the key.
    """

    template_fields: Sequence[str] = (*StripeBaseOperator.template_fields, "idempotency_key")
    operator_extra_links = DASHBOARD_LINKS

    def __init__(self, *, dry_run: bool = False, idempotency_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Not `self.dry_run`: BaseOperator.dry_run() is a method (render templates only).
        self.is_dry_run = dry_run
        self.idempotency_key = idempotency_key

    def idempotent_requests(self, context: Context, operation: str) -> IdempotentRequests[Any]:
        """The idempotent-request engine for this task's ``operation``, its generation in the task state store."""
        from airflow_provider_stripe.hooks.idempotency import IdempotentRequests
        from airflow_provider_stripe.payouts.keys import RunIdentity, explicit_key_function
        from airflow_provider_stripe.payouts.ledger import SingleRequestLedger

        return IdempotentRequests(
            identity=RunIdentity.from_context(context),
            scope=operation,
            ledger=SingleRequestLedger(context.get("task_state_store"), operation),
            key_for=explicit_key_function(str(self.idempotency_key)) if self.idempotency_key else None,
        )

    def resolve_idempotency_key(self, context: Context, operation: str, *parts: object) -> str:
        """The key the next request of ``operation`` would use (e.g. for a dry run)."""
        requests = self.idempotent_requests(context, operation)
        reference = _reference(parts)
        return requests.key(reference, requests.current_generation(reference))

    def send_idempotent(
        self,
        context: Context,
        operation: str,
        call: Callable[[str], T],
        *,
        key_parts: Sequence[object] = (),
        fail_on_refusal: bool = True,
    ) -> tuple[T, str]:
        """Send ``call(key)`` under the engine's key; return its result and the key.

        A refusal raises ``AirflowFailException`` (with ``fail_on_refusal=False``, the error itself).
        """
        answer = self.idempotent_requests(context, operation).request(_reference(key_parts), call, operation, self.log)
        if answer.error is None:
            return answer.result, answer.key  # type: ignore[return-value]
        error = self._explain(answer.error)
        if answer.outcome != "refused" or not fail_on_refusal:
            raise error from answer.cause
        from airflow_provider_stripe.compat import AirflowFailException

        raise AirflowFailException(
            f"{str(error).rstrip('.')}. Stripe refused it definitively, so nothing was done; the task is not "
            "retried automatically (Stripe would answer the same). Fix the cause, then clear the task: it is "
            "sent again under a fresh idempotency key."
        ) from error

    def guard_live_mode(self, action: str = "move money") -> None:
        """Raise :class:`LiveModeNotAllowedError` for a live key the connection does not allow."""
        self.hook.ensure_live_mode_allowed(action)

    def dry_run_result(self, operation: str, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Log what a real run would send and return a dry-run dict; the connection is still validated."""
        from airflow_provider_stripe.errors import redact

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
        from airflow_provider_stripe.validation import format_amount

        extra = ", ".join(f"{k}={v}" for k, v in details.items() if v is not None)
        self.log.info("%s %s: %s%s", verb, format_amount(amount, currency), object_id, f" ({extra})" if extra else "")
