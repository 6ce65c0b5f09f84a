"""Any OpenAI-compatible ``/chat/completions`` endpoint (a vLLM server, for example), or several
replicas of one, balanced by load (:mod:`toolenv.inference.http`: connection reuse, retries with
backoff and jitter, counters).

With ``native_tools`` the tool schemas are sent and the reply's ``tool_calls`` come back as a
message dict (the ``openai`` call format); otherwise the reply's text content is returned. The
model is :attr:`~toolenv.inference.types.ChatModel.concurrent`: the evaluator plays episodes
against it concurrently, one request per episode at a time. The API key (if any) goes only into
the ``Authorization`` header: it is never printed, logged or written to a run folder.
"""

from __future__ import annotations

from typing import Any, Sequence

from toolenv.inference.http import DEFAULT_RETRIES, EndpointPool, parse_urls, shown_url
from toolenv.inference.types import ChatModel, GenerationConfig, ModelError, per_conversation_seeds


class OpenAIEndpointModel(ChatModel):
    concurrent = True

    def __repr__(self) -> str:  # never show the key
        urls = ", ".join(repr(shown_url(url)) for url in self.base_urls)
        return f"OpenAIEndpointModel({urls}, {self.name!r}, api_key={'***' if self.api_key else None})"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        generation: GenerationConfig,
        native_tools: bool = False,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
    ) -> None:
        """``base_url``: one URL, several, or a comma list of them (replicas of one model)."""
        self.base_urls = parse_urls(base_url)
        if not timeout > 0:
            raise ModelError(f"the endpoint timeout must be > 0 seconds (got {timeout!r})")
        self.base_url = self.base_urls[0]
        self.name = model
        self.generation = generation
        self.native_tools = native_tools
        self.api_key = api_key
        self.timeout = timeout
        self.pool = EndpointPool(self.base_urls, api_key, timeout, retries, backoff=backoff)

    def stats(self) -> dict[str, Any]:
        """Requests answered, retries, failures and the peak in flight (see :class:`EndpointPool`)."""
        return self.pool.stats()

    def close(self) -> None:
        self.pool.close()

    def generate(
        self, conversations: Sequence[Sequence[dict[str, Any]]], tools: Sequence[Sequence[dict[str, Any]]] | None = None
    ) -> list[Any]:
        return self.generate_seeded(conversations, tools)

    def generate_seeded(
        self,
        conversations: Sequence[Sequence[dict[str, Any]]],
        tools: Sequence[Sequence[dict[str, Any]]] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Any]:
        """One request per conversation, one after another (the evaluator's concurrency comes
        from calling this from several threads); each sends its own ``seed`` (``seeds[i]``, or
        the configured seed), which servers that support it (vLLM, OpenAI) sample with."""
        seeds = per_conversation_seeds(seeds, self.generation.seed, len(conversations))
        return [
            self._reply(messages, tools[index] if tools is not None else None, seeds[index])
            for index, messages in enumerate(conversations)
        ]

    def _reply(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None, seed: int) -> Any:
        payload: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": self.generation.max_new_tokens,
            "temperature": self.generation.temperature,
            "top_p": self.generation.top_p,
            "seed": seed,
        }
        if self.native_tools and tools is not None:
            payload["tools"] = list(tools)
        answer, url = self.pool.post_json("/chat/completions", payload)
        try:
            message = answer["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"endpoint {url} answered without choices[0].message") from None
        if not isinstance(message, dict):
            raise ModelError(f"endpoint {url} answered a choices[0].message that is not an object")
        if self.native_tools and message.get("tool_calls"):
            return {"role": "assistant", "content": message.get("content"), "tool_calls": message["tool_calls"]}
        return message.get("content") or ""
