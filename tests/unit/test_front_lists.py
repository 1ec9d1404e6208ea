"""The front's list semantics, checked against what Stripe documents (https://docs.stripe.com/api/pagination).

* objects come newest first (``created`` descending; same second: the later-created first);
* ``limit`` ranges 1-100, default 10; anything else is a 400 naming ``limit``;
* ``starting_after=<id>`` gives the objects after it in that order (older), ``ending_before``
  the ones before it (newer), both newest first; they are mutually exclusive;
* ``has_more`` says whether more objects lie beyond the page in the direction of travel;
* ``created`` is an exact second or a range of ``gt``/``gte``/``lt``/``lte`` bounds.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_stripe.testing.front import ListQuery, ListQueryError, OrderedList, list_spec

# Stored oldest first, as localstripe lists them: created 100, 101 (x2, a tie), 102 ... 110.
STORED = [
    {"id": f"po_{n:02d}", "created": 100 + n - (n >= 2), "status": "paid" if n % 2 else "pending"} for n in range(12)
]
ORDERED = OrderedList.newest_first(STORED)


def ids(objects: list[dict[str, Any]]) -> list[str]:
    return [o["id"] for o in objects]


def page(**query: str) -> tuple[list[str], bool]:
    data, has_more = ORDERED.page(ListQuery.parse(query, local_filters=("status",)), "payout")
    return ids(data), has_more


def test_newest_first_and_ties_keep_the_later_created_first() -> None:
    assert ids(list(ORDERED.objects)) == [f"po_{n:02d}" for n in range(11, -1, -1)]
    assert [o["created"] for o in ORDERED.objects][-3:] == [101, 101, 100]


def test_default_limit_is_ten_and_has_more() -> None:
    assert page() == ([f"po_{n:02d}" for n in range(11, 1, -1)], True)
    assert page(limit="12") == ([f"po_{n:02d}" for n in range(11, -1, -1)], False)
    assert page(limit="100")[1] is False


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
def test_limit_out_of_bounds_is_refused(limit: str) -> None:
    with pytest.raises(ListQueryError) as info:
        ListQuery.parse({"limit": limit})
    assert info.value.param == "limit"


def test_starting_after_pages_to_older_objects_until_has_more_is_false() -> None:
    seen: list[str] = []
    query: dict[str, str] = {"limit": "5"}
    for _ in range(10):
        data, has_more = page(**query)
        seen += data
        if not has_more:
            break
        query["starting_after"] = data[-1]
    assert seen == ids(list(ORDERED.objects))  # every object once, in order, in 3 pages


def test_ending_before_pages_to_newer_objects_keeping_newest_first() -> None:
    assert page(ending_before="po_03", limit="3") == (["po_06", "po_05", "po_04"], True)
    assert page(ending_before="po_09", limit="3") == (["po_11", "po_10"], False)


def test_cursors_are_exclusive_and_must_exist() -> None:
    with pytest.raises(ListQueryError, match="both starting_after and ending_before"):
        ListQuery.parse({"starting_after": "po_01", "ending_before": "po_05"})
    with pytest.raises(ListQueryError, match="No such payout: 'po_gone'") as info:
        page(starting_after="po_gone")
    assert info.value.param == "starting_after"


@pytest.mark.parametrize(
    ("bounds", "expected_created"),
    [
        ({"created[gt]": "105"}, list(range(110, 105, -1))),
        ({"created[gte]": "105"}, list(range(110, 104, -1))),
        ({"created[lt]": "102"}, [101, 101, 100]),
        ({"created[lte]": "102"}, [102, 101, 101, 100]),
        ({"created[gte]": "101", "created[lt]": "103"}, [102, 101, 101]),
        ({"created[gt]": "101", "created[lte]": "103"}, [103, 102]),
        ({"created": "101"}, [101, 101]),
        ({"created[gt]": "110"}, []),
    ],
)
def test_created_bounds(bounds: dict[str, str], expected_created: list[int]) -> None:
    data, has_more = ORDERED.page(ListQuery.parse({**bounds, "limit": "100"}), "payout")
    assert [o["created"] for o in data] == expected_created and not has_more


def test_cursor_outside_the_filter_still_marks_the_position() -> None:
    # po_11 (created 110) is outside created[lt]=108 but still a valid place in the list.
    assert page(starting_after="po_11", **{"created[lt]": "108", "limit": "2"}) == (["po_08", "po_07"], True)


def test_filters_apply_before_paging() -> None:
    assert page(status="paid", limit="3") == (["po_11", "po_09", "po_07"], True)
    assert page(status="paid", starting_after="po_07", limit="3") == (["po_05", "po_03", "po_01"], False)


@pytest.mark.parametrize("key", ["created[after]", "created[gte", "created[gte]x"])
def test_unknown_created_operator_is_refused(key: str) -> None:
    with pytest.raises(ListQueryError) as info:
        ListQuery.parse({key: "1"})
    assert info.value.param == key


def test_other_parameters_go_to_localstripe() -> None:
    query = ListQuery.parse({"type": "payout.paid", "limit": "3", "created[gte]": "5"})
    assert query.passthrough == (("type", "payout.paid"),)


def test_payouts_filter_by_arrival_date_as_stripe_does() -> None:
    spec = list_spec("payouts")
    stored = [{"id": f"po_a{n}", "created": 100 + n, "arrival_date": 200 - n} for n in range(5)]
    query = spec.parse({"arrival_date[gte]": "197", "arrival_date[lt]": "200", "limit": "100"})
    data, _ = OrderedList.newest_first(stored).page(query, spec.object_name)
    assert ids(data) == ["po_a3", "po_a2", "po_a1"]
    with pytest.raises(ListQueryError) as info:
        spec.parse({"arrival_date[after]": "1"})
    assert info.value.param == "arrival_date[after]"


def test_event_types_match_exactly_or_by_wildcard() -> None:
    spec = list_spec("events")
    stored = [
        {"id": "evt_1", "created": 1, "type": "charge.refunded"},
        {"id": "evt_2", "created": 2, "type": "charge.dispute.created"},
        {"id": "evt_3", "created": 3, "type": "payout.paid"},
        {"id": "evt_4", "created": 4, "type": "charges.other"},
    ]
    ordered = OrderedList.newest_first(stored)

    def types(wanted: str) -> list[str]:
        return ids(ordered.page(spec.parse({"type": wanted}), spec.object_name)[0])

    assert types("charge.*") == ["evt_2", "evt_1"]
    assert types("payout.paid") == ["evt_3"]
    assert types("charge") == []


def test_held_objects_join_the_list_in_stripes_order() -> None:
    held = [{"id": "po_held", "created": 104}]  # the same second as po_05, joined after it: listed before it
    assert ids(list(ORDERED.joined(held).objects))[5:9] == ["po_06", "po_held", "po_05", "po_04"]
