"""An agent framework holding browser tasks as futures.

A planner hands work to a "browser tool" that returns a :class:`TaskHandle` at once, keeps
thinking while the browser works, streams one task's live reasoning, answers the agent's
questions from a credential vault (``on_guardrail``), caps each task's cost, and collects the
results when it needs them.

    python examples/agent_futures.py
"""

from __future__ import annotations

import asyncio

from _common import open_client

from webrun_async import AsyncWebRun, TaskHandle, WebRunError
from webrun_async.types import AgentThought, BrowserAction, TaskGuardrail, TaskResult

VAULT = {"login": "agent@example.com / correct-horse-battery-staple"}


class BrowserTool:
    """The tool an agent framework registers: each call is a future, not a wait."""

    def __init__(self, client: AsyncWebRun, *, emulated: bool) -> None:
        self._client = client
        self._emulated = emulated

    async def _answer(self, prompt: TaskGuardrail) -> str | None:
        # The framework's human-in-the-loop policy: known questions get stored answers,
        # anything else stops the task rather than guess.
        if "log" in prompt.value.lower():
            print(f"  agent asks: {prompt.value!r} -> answered from the vault")
            return VAULT["login"]
        print(f"  agent asks: {prompt.value!r} -> no stored answer: stopping the task")
        return None

    def __call__(self, instruction: str, *, scenario: str = "") -> TaskHandle[object]:
        # `scenario` scripts the built-in emulator (see the README); the service ignores it
        # because it is only added when the emulator runs.
        text = f"{instruction} {scenario}" if self._emulated and scenario else instruction
        return self._client.tasks.submit(text, max_cost=0.05, on_guardrail=self._answer)


async def main() -> None:
    async with open_client() as (client, emulated):
        browse = BrowserTool(client, emulated=emulated)
        futures = {
            "prices": browse(
                "Compare the price of the Model X keyboard on three shops",
                scenario="[[duration=2]] [[events=6]]",
            ),
            "orders": browse(
                "Log in and list my last three orders",
                scenario="[[guardrail=Please log in to continue]] [[duration=1.5]]",
            ),
            "news": browse("Summarise today's top technology headline"),
        }
        print("planner: dispatched", ", ".join(futures), "- still planning meanwhile")

        async for event in futures["prices"].events():  # watch one task think
            if isinstance(event, AgentThought):
                print(f"  prices thinks: {event.content}")
            elif isinstance(event, BrowserAction):
                print(f"  prices does:   {event.name} {event.target or ''}".rstrip())
            elif isinstance(event, TaskResult):
                print(f"  prices done:   {event.message}")

        outcomes = await client.gather(*futures.values(), return_exceptions=True)
        for name, outcome in zip(futures, outcomes, strict=True):
            if isinstance(outcome, WebRunError):
                print(f"planner: {name} failed: {outcome}")
            else:
                print(f"planner: {name} -> {outcome.message} (${outcome.usage.cost:.4f})")
        print(f"planner: total spent ${client.spent:.4f}")


if __name__ == "__main__":
    asyncio.run(main())
