"""Supervisory signals for multi-step tool-use RL (the paper's methods, methods notes §5).

- :mod:`.schedule` — the methods as configuration (vanilla, sft_rl, ops, hbg, sync_joint,
  ets, prs and the presets ets_difflr, ops_shaped) and the phase plan each one runs;
- :mod:`.ops` — off-policy supervision: which samples are replaced by the ground truth, the
  script substituted for them, and the shaped off-policy loss;
- :mod:`.hints` — hint-based guidance: built-in and endpoint hint writers, generation-only
  insertion into the system prompt;
- :mod:`.ets` — erroneous trajectory supervision: per-rollout records and the selection of
  the training tasks that failed lately;
- :mod:`.reflect` — process reflection supervision: the built-in reflector (from the
  checker's verdicts) and the endpoint judge, and the SFT conversations built from them.

Nothing here imports torch at module level (the loss functions import it when called).
"""
