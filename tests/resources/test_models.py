"""The models resource (``resources/models.py``), end to end against the emulator."""

from __future__ import annotations

from webrun_async import AsyncWebRun


async def test_models(client: AsyncWebRun) -> None:
    models = await client.models.list()
    assert "enigma-browser-1" in [m.id for m in models]
    assert models[0].owned_by == "enigma"
