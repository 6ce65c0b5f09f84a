"""toolenv on TRL 1.16's ``GRPOTrainer`` (extra ``trl``): the same BFCL episode as ``BFCLEnv``.

Two adapters, one per TRL contract:

- :class:`BFCLRollout` — a ``rollout_func`` that plays whole multi-turn episodes (scripted
  user turns 2..N, miss_func reveals, BFCL's step limit) token-in/token-out with the trainer's
  own rollout driver on TRL's policy, and returns ``prompt_ids``, ``completion_ids``,
  ``logprobs``, ``env_mask`` (observation tokens 0) and the checker's reward, which
  :func:`bfcl_reward` hands to TRL as a reward function. Every BFCL task fits.
- :func:`bfcl_environment` / :func:`bfcl_environments` — ``environment_factory`` classes for
  TRL's built-in tool loop: one typed, documented method per BFCL tool, ``reset(**row)`` and
  ``get_reward()``. Only single-user-turn tasks fit (TRL's loop plays one turn).

:func:`bfcl_dataset` builds the rows both read (``task_id``, ``prompt``, ``environment``).

Importing this package imports neither torch nor TRL (they load when a rollout runs).
"""

from __future__ import annotations

from integrations.trl.dataset import bfcl_dataset, task_id_of
from integrations.trl.environment import BFCLToolEnv, bfcl_environment, bfcl_environments, fits_tool_loop
from integrations.trl.rollout import BFCLRollout, bfcl_reward

__all__ = [
    "BFCLRollout",
    "BFCLToolEnv",
    "bfcl_dataset",
    "bfcl_environment",
    "bfcl_environments",
    "bfcl_reward",
    "fits_tool_loop",
    "task_id_of",
]
