"""Does every surface say the same runway after a payment? Prints, for each bill paid through
real signed Slack clicks on the seeded company: the Pay dialog's promise, the card's line after
paying, `/runway`, and the runway after the next sync reads QuickBooks again.

    .venv/bin/python bench/runway_agreement.py [--payments 4]

Each row should read the same number four times (see ARCHITECTURE.md, "Runway after an action").
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile

from bot.local import BOOKKEEPER, BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.slack import blocks as kit
from runway.lifecycle import BillState


async def pay_one(stack: LocalStack, digest_ts: str) -> str:
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    bill = next(b for b in ctx.view.bills_due.items if b.state is BillState.NEEDS_APPROVAL)
    block_id = f"bill_actions:{bill.bill_id}"
    for person in (OWNER, BOOKKEEPER)[: bill.standing.approvals_required]:
        await stack.agent.click(person, stack.message(digest_ts), kit.BILL_APPROVE, block_id=block_id)
        await stack.bot.idle()
    message = stack.message(digest_ts)
    [pay] = [
        element
        for block in message.blocks
        if block.get("block_id") == block_id
        for element in block["elements"]
        if element["action_id"] == kit.BILL_PAY
    ]
    promise = re.search(r"Runway goes from (\d+) to (\d+) days", pay["confirm"]["text"]["text"])
    await stack.agent.click(OWNER, message, kit.BILL_PAY, block_id=block_id)
    await stack.bot.idle()
    [line] = [
        " ".join(element["text"] for element in block["elements"])
        for block in stack.message(digest_ts).blocks
        if block.get("block_id") == f"bill_status:{bill.bill_id}"
    ]
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
    await stack.bot.idle()
    said = re.search(r"Runway: (\d+) days", stack.ephemerals(OWNER)[-1].text)
    services = await stack.oodaloo.services_for(BUSINESS_ID)
    await services.mirror.sync()
    synced = (await stack.oodaloo.digest(BUSINESS_ID)).view.runway.days
    return (
        f"| {bill.bill_id} | {bill.amount} | {promise[1] if promise else '?'} → "
        f"{promise[2] if promise else '?'} | {re.sub(r'.*runway now ', '', line)} | "
        f"{said[1] if said else '?'} | {synced} |"
    )


async def main(payments: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with local_stack(f"sqlite+aiosqlite:///{folder}/oodaloo.db", migrate=True) as stack:
            digest = await stack.post_digest()
            print("| bill | amount | Pay dialog | card after paying | /runway | after the next sync |")
            print("| --- | --- | --- | --- | --- | --- |")
            for _ in range(payments):
                print(await pay_one(stack, digest.ts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=4)
    asyncio.run(main(parser.parse_args().payments))
