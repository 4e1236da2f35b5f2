"""The model list of the OpenAI-compatible API."""

from __future__ import annotations

from webrun_async._core.codec import decoder
from webrun_async.resources._base import Resource
from webrun_async.types.models import Model, ModelList

__all__ = ["Models"]

_decode_models = decoder(ModelList)


class Models(Resource):
    """Reach it as ``client.models``."""

    __slots__ = ()

    async def list(self) -> list[Model]:
        """The model ids the chat endpoint accepts."""
        answer = await self._transport.request("GET", "/v1/models", _decode_models)
        return answer.data
