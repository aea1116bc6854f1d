"""Digests served from memory while the books' version stands, and never after a write.

Every write (a click's approval or snooze, a sync bringing a QuickBooks change, a settings change,
another process's write) changes the version in its own transaction, so the next digest reads the
mirror again; a digest asked again with nothing written is served from memory, and is what a
fresh read gives. On SQLite and PostgreSQL, through the local stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from db_conftest import MigratedDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bot.bootstrap import DigestContext, Oodaloo
from bot.local import BUSINESS_ID, OWNER, LocalStack, local_stack
from bot.slack import blocks as kit
from runway.errors import AlreadyApproved
from runway.kept_reads import StaleRead
from runway.lifecycle import BillState
from runway.shown_rows import NO_ROWS
from sync import books_version
from sync.books_versions import written_table
from sync.db import upgrade_database


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("INSERT INTO bills (id) VALUES (1)", "bills"),
        ('insert into "bills" (id) values ($1)', "bills"),
        ("INSERT OR REPLACE INTO people (a) VALUES (?)", "people"),
        ("UPDATE oodaloo.bills SET balance = 0", "bills"),
        ('UPDATE "drift_events" SET resolved_at = now()', "drift_events"),
        ("  DELETE FROM cash_lines WHERE id = 3", "cash_lines"),
        ("WITH gone AS (SELECT id FROM x) DELETE FROM bills WHERE id IN (SELECT id FROM gone)", "bills"),
        ("TRUNCATE TABLE invoices", "invoices"),
        ("SELECT * FROM bills", None),
        ("WITH a AS (SELECT 1) SELECT * FROM a", None),
        ("SELECT pg_advisory_xact_lock(1)", None),
    ],
)
def test_a_write_is_known_by_its_table(statement: str, table: str | None) -> None:
    assert written_table(statement) == table


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        built.oodaloo.kept_reads.check = True
        yield built


async def _summary(oodaloo: Oodaloo) -> tuple[DigestContext, str]:
    ctx = await oodaloo.digest(BUSINESS_ID, rows=NO_ROWS)
    return ctx, kit.summary_message(ctx.view, business_name=ctx.business.name).text


async def _version(oodaloo: Oodaloo) -> tuple[int, int]:
    async with oodaloo.sessions() as session:
        return await books_version(session, BUSINESS_ID)


async def _bill_needing_approval(oodaloo: Oodaloo) -> str:
    ctx = await oodaloo.digest(BUSINESS_ID)
    for bill in ctx.view.bills:
        if bill.state is BillState.NEEDS_APPROVAL:
            return bill.bill_id
    raise AssertionError("the seeded company has no bill waiting for approval in the digest")


async def test_a_digest_asked_again_is_served_from_memory_until_something_is_written(
    stack: LocalStack,
) -> None:
    oodaloo = stack.oodaloo
    _, first = await _summary(oodaloo)
    served = oodaloo.kept_reads.served
    _, again = await _summary(oodaloo)
    assert oodaloo.kept_reads.served == served + 1  # read again and compared, under check
    assert again == first

    bill_id = await _bill_needing_approval(oodaloo)
    before = await _version(oodaloo)
    digest = await stack.post_digest()
    delivery = await stack.agent.click(
        OWNER, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}"
    )
    assert delivery.status == 200
    services = await oodaloo.services_for(BUSINESS_ID)
    for _ in range(200):  # the click's work runs after its ack
        if (await services.bills.standing(bill_id)).approvals:
            break
        await asyncio.sleep(0.05)
    assert (await services.bills.standing(bill_id)).approvals
    assert (await _version(oodaloo))[0] > before[0]  # the approval changed the version

    served = oodaloo.kept_reads.served
    ctx = await oodaloo.digest(BUSINESS_ID)
    assert oodaloo.kept_reads.served == served  # read from the mirror, not from memory
    assert {bill.bill_id: bill.state for bill in ctx.view.bills}[bill_id] is BillState.APPROVED


async def test_a_quickbooks_change_brought_by_a_sync_is_shown_at_once(stack: LocalStack) -> None:
    oodaloo = stack.oodaloo
    full = await oodaloo.digest(BUSINESS_ID)
    bill = full.view.bills[0]
    realm = stack.sandbox.realm(stack.sandbox.realm_id)
    stored = next(obj for obj in realm.iter("Bill") if obj["Id"] == bill.bill_id)
    moved = date.fromisoformat(stored["DueDate"]) + timedelta(days=40)
    async with stack.sandbox.http_client() as qbo:
        answer = await qbo.post(
            f"/v3/company/{stack.sandbox.realm_id}/bill",
            json={"Id": stored["Id"], "SyncToken": stored["SyncToken"], "sparse": True,
                  "DueDate": moved.isoformat()},
        )
    assert answer.status_code == 200, answer.text
    await oodaloo.digest(BUSINESS_ID)  # kept at the version before the sync
    await (await oodaloo.services_for(BUSINESS_ID)).mirror.sync()
    served = oodaloo.kept_reads.served
    after = await oodaloo.digest(BUSINESS_ID)
    assert oodaloo.kept_reads.served == served
    days = {b.bill_id: b.days_until_due for b in after.view.bills}
    assert days.get(bill.bill_id) != bill.days_until_due


async def test_another_process_writing_is_seen_by_this_one(
    stack: LocalStack, migrated: MigratedDatabase
) -> None:
    ours = stack.oodaloo
    await _summary(ours)
    await _summary(ours)  # kept
    theirs = await Oodaloo.start(ours.settings, migrate=False)
    try:
        business = await theirs.directory.get(BUSINESS_ID)
        await theirs.directory.update(
            BUSINESS_ID, min_cash_buffer=business.min_cash_buffer + Decimal("25000.00")
        )
    finally:
        await theirs.aclose()
    served = ours.kept_reads.served
    ctx, _ = await _summary(ours)
    assert ours.kept_reads.served == served
    assert ctx.business.min_cash_buffer == business.min_cash_buffer + Decimal("25000.00")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_write_committed_while_a_digest_is_read_is_neither_kept_nor_taken_for_staleness(
    stack: LocalStack,
) -> None:
    """On PostgreSQL each statement sees the latest commit: a write landing after the version was
    read and before the mirror is makes the read newer than its version. Such a read is not kept
    under that version, and the check does not compare it with a read kept there (it says nothing
    of it). (SQLite's digest holds the write lock while it reads: no write lands in between.)"""
    oodaloo = stack.oodaloo
    business = await oodaloo.directory.get(BUSINESS_ID)
    raised = business.min_cash_buffer + Decimal("1000.00")
    read_digest = oodaloo._read_digest

    async def written_meanwhile(*args: object, **kwargs: object) -> object:
        buffer = (await oodaloo.directory.get(BUSINESS_ID)).min_cash_buffer
        await oodaloo.directory.update(BUSINESS_ID, min_cash_buffer=buffer + Decimal("1000.00"))
        return await read_digest(*args, **kwargs)  # type: ignore[arg-type]

    await _summary(oodaloo)  # kept at the version that stands
    oodaloo._read_digest = written_meanwhile  # type: ignore[assignment]
    try:
        checked, _ = await _summary(oodaloo)  # served from memory; its check reads after a write
        assert checked.business.min_cash_buffer == business.min_cash_buffer
        served = oodaloo.kept_reads.served
        newer, _ = await _summary(oodaloo)  # read after another write: newer than its version
        assert oodaloo.kept_reads.served == served
        assert newer.business.min_cash_buffer == raised + Decimal("1000.00")
    finally:
        del oodaloo._read_digest
    served = oodaloo.kept_reads.served
    again, _ = await _summary(oodaloo)
    assert oodaloo.kept_reads.served == served, "a read newer than its version was kept"
    assert again.business.min_cash_buffer == raised + Decimal("1000.00")


async def test_within_one_request_a_write_has_the_figures_read_again(stack: LocalStack) -> None:
    """The digests of one request (a click's redraws) share the figures the first read, at one
    version: after a write in between (another task's, or the click's own), the next digest reads
    its figures again, and what is kept at the new version is what reading afresh gives."""
    oodaloo = stack.oodaloo
    business = await oodaloo.directory.get(BUSINESS_ID)
    raised = business.min_cash_buffer + Decimal("25000.00")
    async with oodaloo.one_read():
        await oodaloo.digest(BUSINESS_ID, rows=NO_ROWS)
        await oodaloo.directory.update(BUSINESS_ID, min_cash_buffer=raised)
        within = await oodaloo.digest(BUSINESS_ID)
    assert within.view.runway.buffer == raised
    served = oodaloo.kept_reads.served
    again = await oodaloo.digest(BUSINESS_ID)  # served from memory, and checked against a fresh read
    assert oodaloo.kept_reads.served == served + 1
    assert again.view.runway.buffer == raised


async def test_a_write_that_goes_around_the_version_is_caught(stack: LocalStack) -> None:
    """The check behind every test's kept reads works: a raw write outside any session leaves
    the version alone, and the read served from memory is found stale."""
    oodaloo = stack.oodaloo
    await _summary(oodaloo)
    async with oodaloo.engine.begin() as connection:
        await connection.execute(
            text("UPDATE bills SET balance = balance + 1 WHERE business_id = :b AND balance > 0"),
            {"b": BUSINESS_ID},
        )
    with pytest.raises(StaleRead, match="a write did not change the books' version"):
        await _summary(oodaloo)


OPERATIONS = st.lists(
    st.sampled_from(["approve", "snooze", "buffer", "read", "sync"]), min_size=1, max_size=5
)


@pytest.fixture
async def pristine(tmp_path: Path) -> Path:
    """A migrated SQLite file with nothing in it, copied for each example."""
    path = tmp_path / "pristine.db"
    await upgrade_database(f"sqlite+aiosqlite:///{path}")
    return path


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
async def test_after_any_writes_a_served_digest_is_a_fresh_one(
    pristine: Path, operations: list[str]
) -> None:
    """Whatever was written, in whatever order, every digest served from memory equals the mirror
    read again (the check compares them) and every write is seen by the next digest."""
    database = pristine.with_name(f"example-{uuid.uuid4().hex}.db")
    shutil.copyfile(pristine, database)
    async with local_stack(f"sqlite+aiosqlite:///{database}") as stack:
        oodaloo = stack.oodaloo
        oodaloo.kept_reads.check = True
        services = await oodaloo.services_for(BUSINESS_ID)
        for operation in operations:
            await oodaloo.digest(BUSINESS_ID)
            await oodaloo.digest(BUSINESS_ID, rows=NO_ROWS)
            before = await _version(oodaloo)
            ctx = await oodaloo.digest(BUSINESS_ID)
            open_bills = [bill.bill_id for bill in ctx.view.bills]
            if operation == "approve" and open_bills:
                with contextlib.suppress(AlreadyApproved):  # refused: nothing written
                    await services.bills.approve(open_bills[0], OWNER)
            elif operation == "snooze" and open_bills:
                await services.bills.snooze(
                    open_bills[-1], oodaloo.clock.now() + timedelta(days=9), OWNER
                )
            elif operation == "buffer":
                business = await oodaloo.directory.get(BUSINESS_ID)
                await oodaloo.directory.update(
                    BUSINESS_ID, min_cash_buffer=business.min_cash_buffer + Decimal("100.00")
                )
            elif operation == "sync":
                await services.mirror.sync()
            if operation == "buffer" or (operation == "snooze" and open_bills):
                assert await _version(oodaloo) != before
            served = oodaloo.kept_reads.served
            await oodaloo.digest(BUSINESS_ID)
            unchanged = await _version(oodaloo) == before
            assert oodaloo.kept_reads.served == served + (1 if unchanged else 0)
