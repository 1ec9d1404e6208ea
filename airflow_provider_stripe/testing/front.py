"""A Stripe-faithful front that sits before localstripe and answers what it lacks.

Why it exists: the provider runs one query path, the one Stripe documents (for example
``created[gte]``/``created[lt]`` on list endpoints), and never asks whether it talks to a
test server. localstripe refuses most of those queries, lists oldest first and has no
``/v1/account``. This front is an HTTP server on 127.0.0.1 that forwards every request to
localstripe unchanged, except the routes of its route table, which it answers the way
Stripe documents:

* ``GET /v1/<resource>`` for every resource the provider lists (payouts, charges, events,
  ...): Stripe's list semantics (https://docs.stripe.com/api/pagination): newest first;
  ``limit`` 1-100, default 10; ``starting_after`` / ``ending_before`` cursors (mutually
  exclusive) with ``has_more``; ``created`` (and payouts' ``arrival_date``) as an exact
  timestamp or a range ``[gt|gte|lt|lte]``; the filters localstripe refuses applied here
  (payouts' ``status``; events' ``type``, with Stripe's ``*`` wildcard: ``charge.*``).
  The front reads the whole list from localstripe (oldest first, paged) at a listing's
  first page and filters and pages it itself. The pages that follow (a cursor) reuse that
  copy while only list requests follow each other (paging through 10,000 objects reads
  them from localstripe once); any other request through the front drops it. A write
  sent to localstripe another way (another front) is therefore seen by the next listing,
  not by the pages of a listing already under way.
* ``GET /v1/account``: the account of the key (localstripe has one global store).
* ``POST /v1/charges`` with a Stripe test token (``source="tok_visa"``, what Stripe's docs
  teach): a 400 naming the test PaymentMethod ids localstripe accepts (``pm_card_visa``), instead
  of localstripe's bare "Bad request".
* Connected accounts, for payouts: localstripe ignores ``Stripe-Account``. The front
  remembers which account each object created through it belongs to (the
  ``Stripe-Account`` of the ``POST`` that created it; none: the platform), and its payout
  list shows only the payouts of the request's account, as Stripe's does (a connected
  account's payout batch must neither find nor be blocked by another account's payouts).
  Other lists keep localstripe's one store, which tests of per-account exports rely on.
  Objects created in localstripe directly belong to the platform.

Why it lives in the package, not in ``tests/``: production code always sends those
queries, so anyone running a DAG against a local localstripe needs the front too -- the
demo, a user's local run (``python -m airflow_provider_stripe.testing.localstripe``) and
the test suite all start the same front, in the same child process as localstripe.

Extending it: a route is a :class:`Route` (method, aiohttp path pattern such as
``/v1/files/{id}/contents``, async handler ``(front, request) -> response``); pass
``routes=with_routes(Route(...), ...)`` to :class:`StripeFront` (a route of the same method
and path replaces the default one). Handlers read localstripe through
:meth:`StripeFront.upstream_json` / :meth:`StripeFront.ordered_list`, hand anything else to
:meth:`StripeFront.forward`, answer lists with :func:`list_endpoint` (objects the handler
holds itself may join localstripe's) and errors with :func:`stripe_error`. Routes are
matched in table order, before the pass-through.

Every request is kept in a log (method, path, query, status), served as JSON by
``GET /_front/requests`` and cleared by ``DELETE /_front/requests`` and by the store flush
``DELETE /_config/data``: tests assert from it which queries the provider sent.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import requests
from aiohttp import ClientSession, ClientTimeout, web

Handler = Callable[["StripeFront", web.Request], Awaitable[web.StreamResponse]]

LOG_PATH = "/_front/requests"
FLUSH_PATH = "/_config/data"
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
UPSTREAM_PAGE = 100
MAX_UPSTREAM_PAGES = 10_000
"""Bound on the pages read from localstripe for one list (a million objects)."""
_COMPARE: Mapping[str, Callable[[int, int], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
"""A range filter's operator (``created[gte]``; ``eq`` for ``created=``) as a comparison."""
_CURSORS = ("starting_after", "ending_before")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "content-encoding"}
)


@dataclass(frozen=True)
class Route:
    """One answer of the front: ``method`` and aiohttp ``path`` pattern, and its handler."""

    method: str
    path: str
    handler: Handler


@dataclass(frozen=True)
class LoggedRequest:
    """One request the front received: the query as sent (pairs, in order) and the answer's status."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int

    @property
    def params(self) -> dict[str, str]:
        """The query as a dict (the last value of a repeated key wins)."""
        return dict(self.query)


def stripe_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    """A Stripe-shaped ``invalid_request_error`` (what the SDK turns into ``InvalidRequestError``)."""
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


class StripeFront:
    """The front's state: where localstripe is, its route table and its request log.

    :param upstream_url: localstripe, e.g. ``http://127.0.0.1:PORT``.
    :param routes: the route table; default :data:`DEFAULT_ROUTES`.
    """

    def __init__(self, upstream_url: str, routes: Sequence[Route] | None = None) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.routes: tuple[Route, ...] = tuple(DEFAULT_ROUTES if routes is None else routes)
        self.log: list[LoggedRequest] = []
        self._session: ClientSession | None = None
        self._lists: dict[tuple[Any, ...], OrderedList] = {}
        self._generation = 0
        """Changes when a pass-through request starts or ends: a list read that overlapped one is not kept."""
        self.owners: dict[str, str] = {}
        """Object id -> the connected account it was created under (platform objects are absent)."""

    # -- the aiohttp application ----------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application: log middleware, route table, then the pass-through."""
        app = web.Application(middlewares=[self._log_middleware])
        app.router.add_get(LOG_PATH, self._serve_log)
        app.router.add_delete(LOG_PATH, self._clear_log)
        for route in self.routes:
            app.router.add_route(route.method, route.path, functools.partial(route.handler, self))
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_cleanup.append(self._close_session)
        return app

    @web.middleware
    async def _log_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == LOG_PATH:
            return await handler(request)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if request.method == "DELETE" and request.path == FLUSH_PATH:
            self.log.clear()
            self.owners.clear()
        else:
            self.log.append(LoggedRequest(request.method, request.path, tuple(request.query.items()), response.status))
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def _serve_log(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(entry) for entry in self.log])

    async def _clear_log(self, request: web.Request) -> web.Response:
        self.log.clear()
        return web.json_response({"cleared": True})

    async def _close_session(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    # -- talking to localstripe -----------------------------------------------------

    @property
    def session(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=60), auto_decompress=False)
        return self._session

    @staticmethod
    def forwarded_headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}

    async def forward(self, request: web.Request) -> web.Response:
        """Anything not in the route table (or a route declines): localstripe's answer, unchanged."""
        self._generation += 1
        self._lists.clear()  # it may change what a list holds
        try:
            async with self.session.request(
                request.method,
                f"{self.upstream_url}{request.rel_url}",
                headers=self.forwarded_headers(request),
                data=await request.read(),
                allow_redirects=False,
            ) as upstream:
                body = await upstream.read()
                headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
                account = request.headers.get("Stripe-Account")
                if account and request.method == "POST" and upstream.status == 200:
                    self._remember_owner(body, account)
                return web.Response(status=upstream.status, body=body, headers=headers)
        finally:  # and again once done: a list read that overlapped it is not kept
            self._generation += 1
            self._lists.clear()

    def _remember_owner(self, body: bytes, account: str) -> None:
        """Note the connected account of an object just created (or updated) under ``Stripe-Account``."""
        try:
            created = json.loads(body)
        except ValueError:
            return
        if isinstance(created, dict) and isinstance(created.get("id"), str):
            self.owners.setdefault(created["id"], account)

    def visible(self, request: web.Request, objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The objects of the request's account (``Stripe-Account``, else the platform)."""
        account = request.headers.get("Stripe-Account")
        return [obj for obj in objects if self.owners.get(str(obj.get("id"))) == account]

    async def upstream_json(
        self, request: web.Request, path: str, params: Iterable[tuple[str, str]] = ()
    ) -> tuple[int, Any]:
        """``GET path`` on localstripe with the caller's headers: ``(status, parsed JSON or text)``."""
        async with self.session.get(
            f"{self.upstream_url}{path}", params=list(params), headers=self.forwarded_headers(request)
        ) as upstream:
            text = await upstream.text()
            try:
                return upstream.status, json.loads(text)
            except ValueError:
                return upstream.status, text

    async def upstream_list(
        self, request: web.Request, path: str, params: Iterable[tuple[str, str]] = ()
    ) -> tuple[int, Any]:
        """Every object of a localstripe list (its order: oldest first), read page by page.

        Returns ``(200, objects)`` or localstripe's error ``(status, body)``.
        """
        base = list(params)
        objects: list[dict[str, Any]] = []
        cursor: list[tuple[str, str]] = []
        for _ in range(MAX_UPSTREAM_PAGES):
            status, page = await self.upstream_json(request, path, [*base, ("limit", str(UPSTREAM_PAGE)), *cursor])
            if status != 200:
                return status, page
            objects.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return 200, objects
            cursor = [("starting_after", page["data"][-1]["id"])]
        raise RuntimeError(f"{path}: more than {MAX_UPSTREAM_PAGES} pages upstream")

    async def ordered_list(
        self, request: web.Request, path: str, params: Sequence[tuple[str, str]] = (), *, fresh: bool = False
    ) -> tuple[int, Any]:
        """A localstripe list in Stripe's order (:class:`OrderedList`), reused while nothing else was asked.

        :param fresh: read it again (a listing's first page: what changed since is seen, even
            when it was written to localstripe by another way than this front).

        Returns ``(200, OrderedList)`` or localstripe's error ``(status, body)``.
        """
        key = (path, tuple(params), request.headers.get("Authorization"), request.headers.get("Stripe-Account"))
        cached = None if fresh else self._lists.get(key)
        if cached is not None:
            return 200, cached
        generation = self._generation
        status, objects = await self.upstream_list(request, path, params)
        if status != 200:
            return status, objects
        ordered = OrderedList.newest_first(objects)
        if generation == self._generation:  # nothing passed through meanwhile: still current
            self._lists[key] = ordered
        return 200, ordered


def upstream_error(status: int, body: Any) -> web.Response:
    """Relay localstripe's error answer."""
    if isinstance(body, (dict, list)):
        return web.json_response(body, status=status)
    return web.Response(status=status, text=str(body))


# -- Stripe's list semantics -----------------------------------------------------------


class ListQueryError(Exception):
    """A list query Stripe would refuse (answered as a 400 naming ``param``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ListQuery:
    """The parts of a list request the front answers itself (the rest goes to localstripe)."""

    limit: int
    starting_after: str | None
    ending_before: str | None
    ranges: Mapping[str, Mapping[str, int]]
    """Per timestamp field (``created``, ``arrival_date``): ``{"gt"|"gte"|"lt"|"lte"|"eq": seconds}``."""
    exact: Mapping[str, str]
    """Exact-match filters applied by the front (``status`` of payouts, ``type`` of events)."""
    wildcards: frozenset[str]
    """Those of ``exact`` where a trailing ``*`` matches a prefix (events' ``type``: ``charge.*``)."""
    passthrough: tuple[tuple[str, str], ...]

    @classmethod
    def parse(
        cls,
        query: Mapping[str, str],
        local_filters: Iterable[str] = (),
        *,
        range_filters: Iterable[str] = ("created",),
        wildcard_filters: Iterable[str] = (),
    ) -> ListQuery:
        """Validate ``limit``, the cursors and the timestamp ranges the way Stripe does."""
        wildcards = frozenset(wildcard_filters)
        local = frozenset(local_filters) | wildcards
        fields = tuple(range_filters)
        raw_limit = query.get("limit", str(DEFAULT_LIMIT))
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ListQueryError(f"Invalid integer: {raw_limit}", "limit") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ListQueryError(f"This value must be between 1 and {MAX_LIMIT} (it was {limit}).", "limit")
        if all(query.get(c) for c in _CURSORS):
            raise ListQueryError(
                "Received both starting_after and ending_before parameters. Please pass in only one.", "ending_before"
            )
        ranges: dict[str, dict[str, int]] = {}
        exact: dict[str, str] = {}
        passthrough: list[tuple[str, str]] = []
        for key, value in query.items():
            field = next((f for f in fields if key == f or key.startswith(f"{f}[")), None)
            if field is not None:
                op = "eq" if key == field else key[len(field) + 1 : -1]
                if op not in _COMPARE or (key != field and not key.endswith("]")):
                    raise ListQueryError(f"Received unknown parameter: {key}", key)
                try:
                    ranges.setdefault(field, {})[op] = int(value)
                except ValueError:
                    raise ListQueryError(f"Invalid integer: {value}", key) from None
            elif key in local:
                exact[key] = value
            elif key not in ("limit", *_CURSORS):
                passthrough.append((key, value))
        return cls(
            limit=limit,
            starting_after=query.get("starting_after") or None,
            ending_before=query.get("ending_before") or None,
            ranges=ranges,
            exact=exact,
            wildcards=wildcards,
            passthrough=tuple(passthrough),
        )

    @property
    def first_page(self) -> bool:
        """Whether this request starts a listing (no cursor)."""
        return self.starting_after is None and self.ending_before is None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` passes the timestamp ranges and the exact filters."""
        for field, bounds in self.ranges.items():
            value = int(obj.get(field) or 0)
            if not all(_COMPARE[op](value, bound) for op, bound in bounds.items()):
                return False
        return all(self._matches_exact(field, str(obj.get(field)), wanted) for field, wanted in self.exact.items())

    def _matches_exact(self, field: str, value: str, wanted: str) -> bool:
        if field in self.wildcards and wanted.endswith("*"):
            return value.startswith(wanted[:-1])
        return value == wanted


@dataclass(frozen=True)
class OrderedList:
    """A whole list in Stripe's order, with each id's position (for the cursors)."""

    objects: tuple[dict[str, Any], ...]
    position: Mapping[str, int]

    @classmethod
    def newest_first(cls, oldest_first: Sequence[dict[str, Any]]) -> OrderedList:
        """Stripe's order: most recently created first (ties: the later-created first)."""
        ordered = sorted(reversed(oldest_first), key=lambda o: int(o.get("created") or 0), reverse=True)
        return cls(tuple(ordered), {str(o.get("id")): i for i, o in enumerate(ordered)})

    def joined(self, oldest_first: Sequence[dict[str, Any]]) -> OrderedList:
        """This list with more objects (oldest first) merged in, in Stripe's order."""
        if not oldest_first:
            return self
        return OrderedList.newest_first([*reversed(self.objects), *oldest_first])

    def subset(self, objects: Sequence[dict[str, Any]]) -> OrderedList:
        """Some of this list's objects, given in its order (e.g. one account's)."""
        return OrderedList(tuple(objects), {str(o.get("id")): i for i, o in enumerate(objects)})

    def page(self, query: ListQuery, object_name: str) -> tuple[list[dict[str, Any]], bool]:
        """One page: ``(data, has_more)``, newest first.

        A cursor is a position in the whole list (it need not match the filters);
        ``starting_after`` pages towards older objects, ``ending_before`` towards newer
        ones. Reads only as far as ``limit + 1`` matches.
        """
        cursor = query.starting_after or query.ending_before
        start = -1 if cursor is None else self.position.get(cursor)
        if start is None:
            param = "starting_after" if query.starting_after else "ending_before"
            raise ListQueryError(f"No such {object_name}: '{cursor}'", param)
        backwards = query.ending_before is not None
        indexes = range(start - 1, -1, -1) if backwards else range(start + 1, len(self.objects))
        found: list[dict[str, Any]] = []
        for i in indexes:
            if query.matches(self.objects[i]):
                found.append(self.objects[i])
                if len(found) > query.limit:
                    break
        data = found[: query.limit]
        return (data[::-1] if backwards else data), len(found) > query.limit


@dataclass(frozen=True)
class ListSpec:
    """How the front answers one list endpoint.

    :param object_name: for error messages (``No such payout: 'po_...'``).
    :param local_filters: exact-match filters localstripe refuses, applied by the front.
    :param wildcard_filters: filters applied by the front where a trailing ``*`` matches a prefix.
    :param range_filters: timestamp fields filtered as ``field`` or ``field[gt|gte|lt|lte]``.
    :param per_account: list only the objects of the request's ``Stripe-Account`` (or the platform).
    """

    object_name: str
    local_filters: tuple[str, ...] = ()
    wildcard_filters: tuple[str, ...] = ()
    range_filters: tuple[str, ...] = ("created",)
    per_account: bool = False

    def parse(self, query: Mapping[str, str]) -> ListQuery:
        """The request's :class:`ListQuery` under this endpoint's filters."""
        return ListQuery.parse(
            query, self.local_filters, range_filters=self.range_filters, wildcard_filters=self.wildcard_filters
        )


HeldObjects = Callable[[], Sequence[dict[str, Any]]]
"""Objects a front extension holds itself (oldest first), joining localstripe's list."""


def list_endpoint(spec: ListSpec, held: HeldObjects | None = None) -> Handler:
    """A handler answering a list endpoint with Stripe's semantics (see module doc).

    :param spec: the endpoint's object name and filters.
    :param held: objects that join localstripe's (an extension's own, e.g. automatic payouts).
    """

    async def handle(front: StripeFront, request: web.Request) -> web.StreamResponse:
        try:
            query = spec.parse(request.query)
        except ListQueryError as exc:
            return stripe_error(400, str(exc), param=exc.param)
        status, ordered = await front.ordered_list(request, request.path, query.passthrough, fresh=query.first_page)
        if status != 200:
            return upstream_error(status, ordered)
        if held is not None:
            ordered = ordered.joined(held())
        if spec.per_account:
            ordered = ordered.subset(front.visible(request, ordered.objects))
        return await list_page(request, ordered, query, spec.object_name)

    return handle


PreparePage = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
"""Work on a page's objects before they are sent (e.g. ``expand[]=data.source``)."""


async def list_page(
    request: web.Request,
    ordered: OrderedList,
    query: ListQuery,
    object_name: str,
    prepare: PreparePage | None = None,
) -> web.Response:
    """One page of ``ordered`` as Stripe's list object, or the 400 of a cursor not in it."""
    try:
        data, has_more = ordered.page(query, object_name)
    except ListQueryError as exc:
        return stripe_error(400, str(exc), param=exc.param, code="resource_missing")
    if prepare is not None:
        data = await prepare(data)
    return web.json_response({"object": "list", "url": request.path, "has_more": has_more, "data": data})


LOCAL_ACCOUNT_ID = "acct_localstripe"
"""localstripe has one global store: the one account every key sees."""


async def account(front: StripeFront, request: web.Request) -> web.StreamResponse:
    """``GET /v1/account``: the key's account (after checking the key with localstripe)."""
    status, body = await front.upstream_json(request, "/v1/balance")
    if status != 200:
        return upstream_error(status, body)
    return web.json_response(
        {
            "id": LOCAL_ACCOUNT_ID,
            "object": "account",
            "type": "standard",
            "country": "FR",
            "default_currency": "eur",
            "charges_enabled": True,
            "payouts_enabled": True,
            "details_submitted": True,
            "email": None,
            "business_profile": {"name": "localstripe"},
            "capabilities": {},
            "created": 0,
        }
    )


LOCAL_TEST_CARDS = ("pm_card_visa", "pm_card_chargeCustomerFail")
"""Stripe test card ids localstripe materialises as charge sources (the second is declined)."""


async def create_charge(front: StripeFront, request: web.Request) -> web.StreamResponse:
    """``POST /v1/charges``: localstripe's, except a Stripe test token as ``source``, refused saying what works.

    Stripe's docs teach ``source="tok_visa"``; localstripe knows no tokens and answers a bare
    400 "Bad request". The refusal here is Stripe-shaped (the provider shows its message) and
    names the test PaymentMethod ids localstripe does accept.
    """
    if request.content_type == "application/json":
        source = (await request.json()).get("source")
    else:
        source = (await request.post()).get("source")
    if isinstance(source, str) and source.startswith("tok_"):
        cards = " or ".join(repr(card) for card in LOCAL_TEST_CARDS)
        return stripe_error(
            400,
            f"the local Stripe server (localstripe) knows no test tokens such as {source!r}, which Stripe's test "
            f"mode accepts: charge a test PaymentMethod id instead, source={cards} (declined)",
            param="source",
        )
    return await front.forward(request)


_LOCAL_FILTERS: Mapping[str, tuple[str, ...]] = {"payouts": ("status",)}
_WILDCARD_FILTERS: Mapping[str, tuple[str, ...]] = {"events": ("type",)}
_RANGE_FILTERS: Mapping[str, tuple[str, ...]] = {"payouts": ("created", "arrival_date")}
_PER_ACCOUNT: frozenset[str] = frozenset({"payouts"})
"""Lists Stripe scopes to the request's ``Stripe-Account`` that localstripe does not (see module doc)."""


def list_spec(resource: str) -> ListSpec:
    """How the front lists a resource of the provider's export registry (``payouts``)."""
    from airflow_provider_stripe.exports.resources import RESOURCES

    return ListSpec(
        RESOURCES[resource].object,
        local_filters=_LOCAL_FILTERS.get(resource, ()),
        wildcard_filters=_WILDCARD_FILTERS.get(resource, ()),
        range_filters=_RANGE_FILTERS.get(resource, ("created",)),
        per_account=resource in _PER_ACCOUNT,
    )


def _list_routes() -> tuple[Route, ...]:
    """Stripe's list semantics on every resource the provider lists (its export registry)."""
    from airflow_provider_stripe.exports.resources import RESOURCES

    return tuple(Route("GET", f"/v1/{name}", list_endpoint(list_spec(name))) for name in RESOURCES)


DEFAULT_ROUTES: tuple[Route, ...] = (
    *_list_routes(),
    Route("GET", "/v1/account", account),
    Route("POST", "/v1/charges", create_charge),
)
"""What localstripe lacks and the provider uses."""


def with_routes(*routes: Route, base: Sequence[Route] = DEFAULT_ROUTES) -> tuple[Route, ...]:
    """``routes`` first, then ``base`` without the routes they replace (same method and path)."""
    replaced = {(r.method, r.path) for r in routes}
    return (*routes, *(r for r in base if (r.method, r.path) not in replaced))


# -- clients of a running front (tests, demos) ------------------------------------------


def request_log(front_url: str) -> list[LoggedRequest]:
    """The requests a running front has received since its last flush, oldest first."""
    resp = requests.get(f"{front_url.rstrip('/')}{LOG_PATH}", timeout=5)
    resp.raise_for_status()
    return [
        LoggedRequest(e["method"], e["path"], tuple((k, v) for k, v in e["query"]), int(e["status"]))
        for e in resp.json()
    ]


def clear_request_log(front_url: str) -> None:
    """Forget the requests logged so far."""
    requests.delete(f"{front_url.rstrip('/')}{LOG_PATH}", timeout=5).raise_for_status()
