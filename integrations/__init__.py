"""Adapters that put toolenv's episode on other engines' contracts (issue #16).

Each adapter plays exactly the episode :class:`toolenv.env.BFCLEnv` plays (scripted user
turns, miss_func reveals, BFCL's step limit, the checker's reward) by driving a ``BFCLEnv``;
none has an episode loop of its own. Each lives in its own optional extra, so the core stays
light: importing this package imports nothing heavy.

- :mod:`integrations.server`: ``toolenv serve``, an OpenEnv HTTP + WebSocket server
  (extra ``server``).
- :mod:`integrations.mcp`: ``toolenv mcp --task ID``, one task's tools as an MCP server over
  stdio or Streamable HTTP (extra ``mcp``).
- :mod:`integrations.trl`: a ``rollout_func`` (whole multi-turn episodes, token-in/token-out)
  and ``environment_factory`` classes for TRL's ``GRPOTrainer`` (extra ``trl``).
- :mod:`integrations.verifiers`: ``load_environment()`` for verifiers / prime-rl (extra
  ``verifiers``, in an environment of its own).
- :mod:`integrations.verl`: the verl agent loop ``toolenv_bfcl`` (extra ``verl``; docs/verl.md).

Layer: on top of every other package (it may import them all; none imports it), checked by
``tests/test_layers.py``.
"""
