"""Supervisory signals for multi-step tool-use RL (the paper's methods, docs/paper-methods.md §5).

- :mod:`.method` — what a method is to the trainer: the :class:`~.method.Method` base with its
  hooks (phases, episode hooks, updater, config check, interleaved SFT data), the phases, the
  registry;
- :mod:`.schedule` — the methods themselves (vanilla, sft, sft_rl, ops, hbg, sync_joint, ets,
  prs and the presets ets_difflr, ops_shaped), each one class owning its behaviour;
- :mod:`.run` — running a method: its phases, each one a resumable training run;
- :mod:`.ops` — off-policy supervision: which samples are replaced by the ground truth, the
  script substituted for them, and the shaped off-policy loss;
- :mod:`.hints` — hint-based guidance: built-in and endpoint hint writers, generation-only
  insertion into the system prompt;
- :mod:`.ets` — erroneous trajectory supervision: the selection of the training tasks that
  failed lately;
- :mod:`.reflect` — process reflection supervision: the built-in reflector (from the
  checker's verdicts) and the SFT conversations built from reflections;
- :mod:`.prs` — PRS's data: which trajectories, the endpoint judge, the reflection records;
- :mod:`.updaters` — the GRPO updaters of the methods that change the update.

Only :mod:`.run` (the trainer) and :mod:`.updaters` import torch at module level; the loss
functions of :mod:`.ops` import it when called.
"""
