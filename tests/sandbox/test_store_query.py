"""The sandbox store and its query language: raw writes, change events, tombstones, indexes, and
every query form QBO clients send, checked against a plain reference evaluation."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from qbo_sandbox.api import build_v3_app
from qbo_sandbox.store import (
    ChangeEvent,
    QueryError,
    Realm,
    Store,
    UnknownEntity,
    UnknownObject,
    UnknownRealm,
    canonical_entity,
)

START = datetime(2024, 5, 1, 17, 0, tzinfo=UTC)


class SteppingClock:
    """A clock that moves only when told to (each test decides what 'now' is)."""

    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def store(clock: SteppingClock) -> Store:
    return Store(clock)


@pytest.fixture
def realm(store: Store) -> Realm:
    return store.create_realm("4620816365")


def _bill(vendor: str, total: str, balance: str, txn: str, due: str, doc: str) -> dict:
    return {
        "VendorRef": {"value": vendor, "name": f"Vendor {vendor}"},
        "TotalAmt": Decimal(total),
        "Balance": Decimal(balance),
        "TxnDate": txn,
        "DueDate": due,
        "DocNumber": doc,
        "Line": [{"Amount": Decimal(total), "DetailType": "AccountBasedExpenseLineDetail"}],
    }


# -- store -----------------------------------------------------------------------------------------


def test_insert_put_remove_keep_qbo_metadata_and_emit_events(store, realm, clock):
    events: list[ChangeEvent] = []
    store.subscribe(events.append)

    bill = realm.insert("bill", _bill("7", "120.00", "120.00", "2024-04-01", "2024-05-01", "A-1"))
    assert bill["Id"] == "1" and bill["SyncToken"] == "0" and bill["domain"] == "QBO"
    assert bill["sparse"] is False
    assert bill["MetaData"] == {
        "CreateTime": "2024-05-01T10:00:00-07:00",  # company time, America/Los_Angeles
        "LastUpdatedTime": "2024-05-01T10:00:00-07:00",
    }

    bill["Balance"] = Decimal("20.00")
    clock.advance(minutes=5)
    updated = realm.put("Bill", bill)
    assert updated["SyncToken"] == "1"
    assert updated["MetaData"]["CreateTime"] == "2024-05-01T10:00:00-07:00"
    assert updated["MetaData"]["LastUpdatedTime"] == "2024-05-01T10:05:00-07:00"

    # Copies: changing what the store handed out changes nothing inside it.
    updated["Balance"] = Decimal("999")
    assert realm.get("Bill", "1")["Balance"] == Decimal("20.00")

    clock.advance(minutes=5)
    removed = realm.remove("Bill", "1")
    assert removed["Id"] == "1" and realm.get("Bill", "1") is None
    assert [(e.entity, e.id, e.operation) for e in events] == [
        ("Bill", "1", "Create"),
        ("Bill", "1", "Update"),
        ("Bill", "1", "Delete"),
    ]
    changes = realm.changed_since(["Bill"], START)
    assert changes["Bill"] == [
        {
            "domain": "QBO",
            "status": "Deleted",
            "Id": "1",
            "MetaData": {"LastUpdatedTime": "2024-05-01T10:10:00-07:00"},
        }
    ]


def test_ids_come_from_one_counter_per_realm_and_errors_name_the_problem(store, realm):
    assert realm.insert("Vendor", {"DisplayName": "A"})["Id"] == "1"
    assert realm.insert("Customer", {"DisplayName": "B"})["Id"] == "2"
    assert realm.insert("CompanyInfo", {"Id": "1", "CompanyName": "C"})["Id"] == "1"
    assert realm.insert("Bill", {})["Id"] == "3"
    with pytest.raises(UnknownObject):
        realm.put("Bill", {"Id": "99"})
    with pytest.raises(UnknownObject):
        realm.remove("Bill", "99")
    with pytest.raises(UnknownEntity):
        canonical_entity("Widget")
    with pytest.raises(UnknownRealm):
        store.realm("nope")
    assert canonical_entity("BILLPAYMENT") == "BillPayment"
    assert store.realm_ids() == ["4620816365"]


def test_changed_since_returns_objects_updated_at_or_after_the_time(realm, clock):
    realm.insert("Bill", _bill("1", "10", "10", "2024-04-01", "2024-04-30", "1"))
    clock.advance(hours=1)
    second = realm.insert("Bill", _bill("1", "20", "20", "2024-04-01", "2024-04-30", "2"))
    realm.insert("Invoice", {"CustomerRef": {"value": "3"}, "TotalAmt": Decimal("5")})
    changes = realm.changed_since(["Bill", "Invoice"], START + timedelta(minutes=30))
    assert [b["Id"] for b in changes["Bill"]] == [second["Id"]]
    assert len(changes["Invoice"]) == 1


def test_bulk_loading_emits_nothing_and_indexes_are_ready_after(store, realm):
    events: list[ChangeEvent] = []
    store.subscribe(events.append)
    with realm.bulk():
        for i in range(50):
            realm.insert(
                "Bill",
                _bill(str(i % 5), "10", "10", "2024-04-01", f"2024-05-{i % 28 + 1:02d}", str(i)),
            )
    assert events == []
    assert realm.count("Bill") == 50
    assert realm.query("SELECT COUNT(*) FROM Bill WHERE VendorRef = '3'") == {"totalCount": 10}
    assert realm.query("SELECT COUNT(*) FROM Bill WHERE DueDate <= '2024-05-02'") == {
        "totalCount": 4
    }


def test_requestid_responses_are_remembered_per_realm(store, realm):
    realm.remember_response("abc", 200, b'{"Bill":{}}')
    assert realm.recall_response("abc") == (200, b'{"Bill":{}}')
    other = store.create_realm("9341453050")
    assert other.recall_response("abc") is None


# -- query language ----------------------------------------------------------------------------


@pytest.fixture
def books(realm: Realm) -> Realm:
    rows = [
        ("10", "100.00", "100.00", "2024-01-05", "2024-02-04", "INV-1"),
        ("10", "250.50", "0.00", "2024-01-20", "2024-02-19", "INV-2"),
        ("11", "75.25", "75.25", "2024-02-01", "2024-03-02", "O'Neil-3"),
        ("12", "1200.00", "600.00", "2024-02-15", "2024-03-16", "INV-4"),
        ("12", "9.99", "9.99", "2024-03-01", "2024-03-31", "inv-5"),
    ]
    for row in rows:
        realm.insert("Bill", _bill(*row))
    realm.insert("Vendor", {"DisplayName": 'O\'Brien & Sons <"Café">', "Active": True})
    realm.insert("Vendor", {"DisplayName": "Zed Supply", "Active": False})
    return realm


def _ids(result: dict, entity: str = "Bill") -> list[str]:
    return [obj["Id"] for obj in result.get(entity, [])]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Id = '3'", ["3"]),
        ("Id IN ('1', '4', '42')", ["1", "4"]),
        ("VendorRef = '12'", ["4", "5"]),
        ("VendorRef IN ('10','11')", ["1", "2", "3"]),
        ("Balance > '0'", ["1", "3", "4", "5"]),
        ("Balance = '0.00'", ["2"]),
        ("TotalAmt >= 250.50", ["2", "4"]),
        ("TotalAmt < '75.25'", ["5"]),
        ("TotalAmt <= '75.25'", ["3", "5"]),
        ("TxnDate > '2024-01-20'", ["3", "4", "5"]),
        ("DueDate < '2024-03-02' AND Balance > '0'", ["1"]),
        ("DocNumber LIKE 'inv%'", ["1", "2", "4", "5"]),
        ("DocNumber LIKE '%-3'", ["3"]),
        (r"DocNumber = 'O\'Neil-3'", ["3"]),
        ("DocNumber = 'nothing'", []),
        ("MetaData.LastUpdatedTime >= '2024-05-01'", ["1", "2", "3", "4", "5"]),
        ("MetaData.LastUpdatedTime > '2024-05-01T10:00:00-07:00'", []),
        ("metadata.createtime <= '2024-05-01T17:00:00Z'", ["1", "2", "3", "4", "5"]),
    ],
)
def test_where_operators(books, where, expected):
    assert _ids(books.query(f"SELECT * FROM Bill WHERE {where}")) == expected


def test_ordering_both_spellings_and_directions(books):
    assert _ids(books.query("select * from bill ORDER BY TotalAmt DESC")) == [
        "4",
        "2",
        "1",
        "3",
        "5",
    ]
    assert _ids(books.query("SELECT * FROM Bill ORDERBY DueDate")) == ["1", "2", "3", "4", "5"]
    assert _ids(books.query("SELECT * FROM Bill ORDERBY DocNumber ASC")) == [
        "1",
        "2",
        "4",
        "5",
        "3",
    ]
    assert _ids(books.query("SELECT * FROM Bill WHERE VendorRef = '12' ORDERBY Id DESC")) == [
        "5",
        "4",
    ]
    vendors = books.query("SELECT * FROM Vendor ORDERBY DisplayName DESC")
    assert [v["DisplayName"] for v in vendors["Vendor"]] == [
        "Zed Supply",
        'O\'Brien & Sons <"Café">',
    ]


def test_paging_reports_the_page_and_reaches_the_last_one(books):
    first = books.query("SELECT * FROM Bill ORDERBY TxnDate STARTPOSITION 1 MAXRESULTS 2")
    # A page says where it starts and how many rows it holds; the total is COUNT(*)'s answer.
    assert first["startPosition"] == 1 and first["maxResults"] == 2 and "totalCount" not in first
    assert books.query("SELECT COUNT(*) FROM Bill ORDERBY TxnDate MAXRESULTS 2") == {
        "totalCount": 5
    }
    last = books.query("SELECT * FROM Bill ORDERBY TxnDate STARTPOSITION 5 MAXRESULTS 2")
    assert last["startPosition"] == 5 and last["maxResults"] == 1
    pages = [
        _ids(books.query(f"SELECT * FROM Bill ORDERBY TxnDate STARTPOSITION {start} MAXRESULTS 2"))
        for start in (1, 3, 5, 7)
    ]
    assert pages == [["1", "2"], ["3", "4"], ["5"], []]
    assert books.query("SELECT * FROM Bill STARTPOSITION 7 MAXRESULTS 2") == {}


def test_count_booleans_escaped_names_and_empty_results(books):
    assert books.query("SELECT COUNT(*) FROM Bill") == {"totalCount": 5}
    assert books.query("select count(*) from Bill where Balance > '0'") == {"totalCount": 4}
    assert books.query("SELECT COUNT(*) FROM Deposit") == {"totalCount": 0}
    active = books.query("SELECT * FROM Vendor WHERE Active = true")
    assert [v["DisplayName"] for v in active["Vendor"]] == ['O\'Brien & Sons <"Café">']
    assert _ids(books.query("SELECT * FROM Vendor WHERE Active = false"), "Vendor") == ["7"]
    named = books.query("SELECT * FROM Vendor WHERE DisplayName = 'O\\'Brien & Sons <\"Café\">'")
    assert _ids(named, "Vendor") == ["6"]
    assert _ids(books.query("SELECT * FROM Vendor WHERE DisplayName LIKE '%café%'"), "Vendor") == [
        "6"
    ]
    assert books.query("SELECT * FROM Invoice") == {}


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Bill WHERE Balance > '0' OR TotalAmt > '5'",
        "SELECT Id, TotalAmt FROM Bill",
        "SELECT * FROM Bill b JOIN Vendor v",
        "SELECT * FROM Bill WHERE",
        "SELECT * FROM Bill WHERE DocNumber = 'unterminated",
        "SELECT * FROM Bill MAXRESULTS 1001",
        "SELECT * FROM Bill STARTPOSITION 0",
        "SELECT * FROM Widget",
        "SELECT * FROM Bill WHERE TotalAmt != '5'",
        "DELETE FROM Bill",
        "",
    ],
)
def test_malformed_statements_raise_query_error(books, statement):
    with pytest.raises(QueryError) as caught:
        books.query(statement)
    assert caught.value.message == "Error parsing query"
    assert caught.value.detail.startswith(("QueryParserError: ", "QueryValidationError: "))


@pytest.mark.parametrize(
    ("statement", "detail"),
    [
        # A property the entity has but QBO does not filter or order on.
        (
            "SELECT * FROM Bill WHERE Line.Amount = '9.99'",
            "property 'Line.Amount' is not queryable",
        ),
        ("SELECT * FROM Bill WHERE PrivateNote = 'x'", "property 'PrivateNote' is not queryable"),
        ("SELECT * FROM Bill ORDERBY LinkedTxn", "property 'LinkedTxn' is not queryable"),
        ("SELECT COUNT(*) FROM Bill WHERE Line = '1'", "property 'Line' is not queryable"),
        ("SELECT * FROM Vendor WHERE Nick = 'x'", "Property Nick not found for Entity Vendor"),
        ("SELECT * FROM Bill WHERE Colour = 'red'", "Property Colour not found for Entity Bill"),
        ("SELECT * FROM Bill ORDERBY Colour DESC", "Property Colour not found for Entity Bill"),
        (
            "SELECT * FROM Deposit WHERE Nothing > '0'",
            "Property Nothing not found for Entity Deposit",
        ),
    ],
)
def test_unknown_or_unqueryable_properties_are_refused_as_qbo_does(books, statement, detail):
    with pytest.raises(QueryError) as caught:
        books.query(statement)
    assert caught.value.code == "4001"
    assert caught.value.message == "Invalid query"
    assert caught.value.detail == f"QueryValidationError: {detail}"


def test_queryable_properties_are_matched_in_any_letter_case(books):
    assert _ids(books.query("SELECT * FROM Bill WHERE vendorref = '12' ORDERBY duedate DESC")) == [
        "5",
        "4",
    ]
    assert _ids(books.query("SELECT * FROM Vendor WHERE displayname LIKE 'Zed%'"), "Vendor") == [
        "7"
    ]


async def test_an_unqueryable_property_answers_400_with_fault_4001_over_http(store, books):
    transport = httpx.ASGITransport(app=build_v3_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://qbo") as client:
        answer = await client.get(
            f"/v3/company/{books.realm_id}/query",
            params={"query": "SELECT * FROM Bill WHERE PrivateNote = 'rent'"},
        )
        assert answer.status_code == 400
        assert answer.json()["Fault"] == {
            "Error": [
                {
                    "Message": "Invalid query",
                    "Detail": "QueryValidationError: property 'PrivateNote' is not queryable",
                    "code": "4001",
                    "element": "",
                }
            ],
            "type": "ValidationFault",
        }
        page = await client.get(
            f"/v3/company/{books.realm_id}/query",
            params={"query": "SELECT * FROM Bill MAXRESULTS 2"},
        )
        assert page.status_code == 200
        assert {k: v for k, v in page.json()["QueryResponse"].items() if k != "Bill"} == {
            "startPosition": 1,
            "maxResults": 2,
        }


def test_indexed_plans_agree_with_a_plain_evaluation(realm):
    """Random data, many query shapes: whatever index a plan picks, the answer is the naive one."""
    rng = random.Random(7)
    with realm.bulk():
        for i in range(3000):
            txn = datetime(2024, 1, 1) + timedelta(days=rng.randrange(120))
            due = txn + timedelta(days=rng.choice((15, 30, 60)))
            total = Decimal(rng.randrange(1, 50000)) / 100
            bill = _bill(
                str(rng.randrange(1, 40)),
                str(total),
                str(total if rng.random() < 0.6 else 0),
                txn.date().isoformat(),
                due.date().isoformat(),
                f"D{i}",
            )
            if rng.random() < 0.05:
                del bill["DueDate"]
            realm.insert("Bill", bill)
    objs = list(realm.iter("Bill"))

    def due(b):
        return b.get("DueDate")

    cases = [
        ("Balance > '0'", lambda b: b["Balance"] > 0, None),
        (
            "VendorRef IN ('3','5') AND TotalAmt > '100'",
            lambda b: b["VendorRef"]["value"] in ("3", "5") and b["TotalAmt"] > 100,
            None,
        ),
        (
            "DueDate >= '2024-03-01' AND DueDate < '2024-04-01'",
            lambda b: due(b) is not None and "2024-03-01" <= due(b) < "2024-04-01",
            None,
        ),
        (
            "TxnDate <= '2024-02-10' AND Balance = '0'",
            lambda b: b["TxnDate"] <= "2024-02-10" and b["Balance"] == 0,
            None,
        ),
        ("TotalAmt > '10'", lambda b: b["TotalAmt"] > 10, "DueDate"),
        ("TotalAmt > '490'", lambda b: b["TotalAmt"] > 490, "DueDate DESC"),
        ("TxnDate >= '2024-01-10'", lambda b: b["TxnDate"] >= "2024-01-10", "TxnDate DESC"),
        ("Balance > '0'", lambda b: b["Balance"] > 0, "TotalAmt"),
        ("VendorRef = '9'", lambda b: b["VendorRef"]["value"] == "9", "DueDate DESC"),
    ]
    for where, keep, order in cases:
        expected = [b for b in objs if keep(b)]
        if order:
            name, _, direction = order.partition(" ")
            present = sorted(
                (b for b in expected if b.get(name) is not None),
                key=lambda b: (b[name], int(b["Id"])),
                reverse=direction == "DESC",
            )
            expected = present + [b for b in expected if b.get(name) is None]
        order_clause = f" ORDERBY {order}" if order else ""
        count = realm.query(f"SELECT COUNT(*) FROM Bill WHERE {where}")
        assert count == {"totalCount": len(expected)}, where
        for start in (1, 101, max(1, len(expected) - 20)):
            got = realm.query(
                f"SELECT * FROM Bill WHERE {where}{order_clause} STARTPOSITION {start} MAXRESULTS 100"
            )
            want = [b["Id"] for b in expected[start - 1 : start - 1 + 100]]
            if order:  # ties on the order field may come in either Id order: compare keys and sets
                name = order.split()[0]
                assert [realm.get("Bill", i).get(name) for i in _ids(got)] == [
                    realm.get("Bill", i).get(name) for i in want
                ], (where, order, start)
                assert len(_ids(got)) == len(want)
            else:
                assert _ids(got) == want, (where, start)


def test_a_page_of_1000_from_100000_bills_takes_milliseconds(store):
    big = store.create_realm("1234500000")
    rng = random.Random(1)
    with big.bulk():
        for i in range(100_000):
            day = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            big.insert(
                "Bill",
                {
                    "VendorRef": {"value": str(i % 300)},
                    "TotalAmt": Decimal(i % 997),
                    "Balance": Decimal(i % 997),
                    "TxnDate": day,
                    "DueDate": day,
                },
            )
    statements = [
        "SELECT * FROM Bill STARTPOSITION 99001 MAXRESULTS 1000",
        "SELECT * FROM Bill ORDERBY DueDate DESC STARTPOSITION 50001 MAXRESULTS 1000",
        "SELECT * FROM Bill WHERE DueDate >= '2024-06-01' ORDERBY DueDate STARTPOSITION 20001 MAXRESULTS 1000",
        "SELECT * FROM Bill WHERE VendorRef = '42' ORDERBY DueDate MAXRESULTS 1000",
        "SELECT * FROM Bill WHERE MetaData.LastUpdatedTime > '2024-01-01' MAXRESULTS 1000",
    ]
    for statement in statements:
        big.query(statement)  # first use warms caches
        started = time.perf_counter()
        result = big.query(statement)
        elapsed = time.perf_counter() - started
        assert len(result["Bill"]) >= 300
        # A full scan and sort of 100,000 bills takes well over a second here; a page must not.
        assert elapsed < 0.15, f"{statement}: {elapsed * 1000:.0f} ms"
