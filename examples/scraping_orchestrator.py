"""A scraping orchestrator: many URLs, bounded concurrency, progress as tasks finish.

Every URL becomes a task with typed output. ``max_sessions`` bounds how many browsers run at
once (the rest wait their turn, in order), ``max_cost`` bounds the whole run's spending, and
``as_completed`` reports each page as soon as it is done, whatever the order.

    python examples/scraping_orchestrator.py [CONCURRENCY]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import msgspec
from _common import open_client

from webrun_async import BudgetExceeded, TaskHandle, WebRunError


class Product(msgspec.Struct):
    """One product found on a page."""

    name: str
    price: float
    in_stock: bool


URLS = [f"https://shop.example/category/{n}" for n in range(1, 25)]


async def main(concurrency: int) -> None:
    async with open_client(max_sessions=concurrency, max_cost=5.0) as (client, _):
        started = time.monotonic()
        pages: dict[TaskHandle[list[Product]], str] = {
            client.tasks.submit(
                "List every product on this page with its price and availability",
                starting_url=url,
                output_schema=list[Product],
                max_duration=120,
            ): url
            for url in URLS
        }
        found: list[Product] = []
        failed = 0
        reported = 0
        async for handle in client.as_completed(pages):
            reported += 1
            url = pages[handle]
            try:
                result = await handle
            except BudgetExceeded as exc:
                print(f"[{reported:>2}/{len(pages)}] {url}: stopped ({exc})")
                failed += 1
                continue
            except WebRunError as exc:
                print(f"[{reported:>2}/{len(pages)}] {url}: failed ({exc})")
                failed += 1
                continue
            products = result.output or []
            found.extend(products)
            print(
                f"[{reported:>2}/{len(pages)}] {url}: {len(products)} products, "
                f"${result.usage.cost:.4f}, {time.monotonic() - started:.1f} s"
            )
        print(
            f"Done: {len(found)} products from {len(pages) - failed} pages "
            f"({failed} failed) in {time.monotonic() - started:.1f} s; "
            f"total cost ${client.spent:.4f}"
        )


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected 1 to 100 browsers at once, got {value}")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "concurrency",
        nargs="?",
        type=_concurrency,
        default=6,
        help="how many browsers run at once (default: 6)",
    )
    asyncio.run(main(parser.parse_args().concurrency))
