"""Stream a chat answer to the terminal as it arrives (the OpenAI-compatible endpoint).

    python examples/stream_chat.py "Go to example.com and list its headings"
"""

from __future__ import annotations

import asyncio
import sys

from _common import open_client

from webrun_async import WebRunError


async def main(question: str) -> None:
    async with open_client() as (client, _):
        stream = await client.chat.completions.create(
            model="enigma-browser-1",
            messages=[{"role": "user", "content": question}],
            stream=True,
        )
        try:
            async with stream:  # leaving the block closes the response at once
                async for chunk in stream:
                    for choice in chunk.choices:
                        print(choice.delta.content or "", end="", flush=True)
        except WebRunError as exc:
            print(f"\n[stopped: {exc}]")
            return
        finish = stream.completion.choices[0].finish_reason
        print(f"\n[{len(stream.text)} characters, finish: {finish}]")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "Go to example.com and list its headings"))
