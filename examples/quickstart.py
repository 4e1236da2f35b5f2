"""Run a handful of WebRun tasks at once and print each result with its cost.

With ``WEBRUN_API_KEY`` set this talks to the WebRun service. Without it, it starts the
emulator that ships inside the package and says so: no account needed.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

import msgspec
from _common import open_client

from webrun_async import TaskResult, WebRunError


class Headline(msgspec.Struct):
    """Structured output: the agent's answer is decoded into this type."""

    title: str
    url: str


TASKS: list[tuple[str, str]] = [
    ("Read the main heading of the page", "https://example.com"),
    ("Search for wireless keyboards and report the cheapest one", "https://www.amazon.com"),
    ("Find the opening hours of the city library", "https://www.wikipedia.org"),
    ("Summarise the top story", "https://news.ycombinator.com"),
]


async def main() -> None:
    # Leaving this block terminates any session still running, whatever happens.
    async with open_client() as (client, _):
        plain = [client.run_task(text, starting_url=url) for text, url in TASKS]
        typed = client.run_task(
            "List the top three headlines with their links",
            starting_url="https://news.ycombinator.com",
            output_schema=list[Headline],
        )
        outcomes = await asyncio.gather(*plain, typed, return_exceptions=True)

        total = 0.0
        labels = [text for text, _ in TASKS] + ["Top three headlines (typed output)"]
        for number, (label, outcome) in enumerate(zip(labels, outcomes, strict=True), 1):
            if isinstance(outcome, WebRunError):
                print(f"[{number}] {label}\n    failed: {outcome}")
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            assert isinstance(outcome, TaskResult)
            total += outcome.usage.cost
            answer = outcome.output if outcome.output is not None else outcome.message
            print(
                f"[{number}] {label}\n    {answer}\n"
                f"    cost ${outcome.usage.cost:.4f}, {outcome.usage.total_tokens} tokens, "
                f"{outcome.usage.completion_time:.1f} s"
            )
        print(f"Total cost: ${total:.4f} for {len(outcomes)} tasks")


if __name__ == "__main__":
    asyncio.run(main())
