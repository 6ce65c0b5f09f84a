"""BFCL multi-turn for verifiers (issue #16 item 3; extra ``verifiers``, in its own environment).

``load_environment(**args)`` returns a verifiers 0.4.0 ``vf.Env`` whose rollouts each play one
fresh :class:`toolenv.env.BFCLEnv` episode and whose reward is the BFCL checker's entry score
(:mod:`integrations.verifiers.environment`). The verifiers-free core, one rollout's episode and
the task rows, is :mod:`integrations.verifiers.episode`.

Importing this package imports nothing heavy: the names below load verifiers on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BFCLTaskset", "BFCLVerifiersEnv", "load_environment"]


def __getattr__(name: str) -> Any:
    """``BFCLTaskset``, ``BFCLVerifiersEnv``, ``load_environment`` from the verifiers module."""
    if name in __all__:
        from integrations.verifiers import environment

        return getattr(environment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
