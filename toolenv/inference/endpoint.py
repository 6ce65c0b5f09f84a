"""Any OpenAI-compatible ``/chat/completions`` endpoint (a vLLM server, for example).

With ``native_tools`` the tool schemas are sent and the reply's ``tool_calls`` come back as a
message dict (the ``openai`` call format); otherwise the reply's text content is returned.
Only the standard library is used. The API key (if any) goes only into the ``Authorization``
header: it is never printed, logged or written to a run folder.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Sequence

from toolenv.inference.types import ChatModel, GenerationConfig, ModelError, one_line, per_conversation_seeds


class OpenAIEndpointModel(ChatModel):
    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEndpointModel({self.base_url!r}, {self.name!r}, api_key={'***' if self.api_key else None})"

    def __init__(
        self,
        base_url: str,
        model: str,
        generation: GenerationConfig,
        native_tools: bool = False,
        api_key: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ModelError(f"endpoint {base_url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
        if not timeout > 0:
            raise ModelError(f"the endpoint timeout must be > 0 seconds (got {timeout!r})")
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.generation = generation
        self.native_tools = native_tools
        self.api_key = api_key
        self.timeout = timeout

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:200].decode("utf-8", "replace")
            raise ModelError(f"endpoint {self.base_url} answered HTTP {exc.code}: {one_line(body, 200)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise ModelError(
                    f"endpoint {self.base_url} did not answer within {self.timeout:g} s (raise --timeout)"
                ) from None
            raise ModelError(f"cannot reach endpoint {self.base_url} ({reason})") from None
        except ValueError:
            raise ModelError(f"endpoint {self.base_url} did not answer with JSON") from None

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
        """One request per conversation; each sends its own ``seed`` (``seeds[i]``, or the
        configured seed), which servers that support it (vLLM, OpenAI) sample with."""
        seeds = per_conversation_seeds(seeds, self.generation.seed, len(conversations))
        outputs = []
        for index, messages in enumerate(conversations):
            payload: dict[str, Any] = {
                "model": self.name,
                "messages": list(messages),
                "max_tokens": self.generation.max_new_tokens,
                "temperature": self.generation.temperature,
                "top_p": self.generation.top_p,
                "seed": seeds[index],
            }
            if self.native_tools and tools is not None:
                payload["tools"] = list(tools[index])
            answer = self._post(payload)
            try:
                message = answer["choices"][0]["message"]
            except (KeyError, IndexError, TypeError):
                raise ModelError(f"endpoint {self.base_url} answered without choices[0].message") from None
            if self.native_tools and message.get("tool_calls"):
                outputs.append(
                    {"role": "assistant", "content": message.get("content"), "tool_calls": message["tool_calls"]}
                )
            else:
                outputs.append(message.get("content") or "")
        return outputs
