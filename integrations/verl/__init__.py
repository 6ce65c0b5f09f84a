"""BFCL multi-turn for verl (issue #16 item 4; extra ``verl``).

- :mod:`integrations.verl.agent_loop`: the agent loop ``toolenv_bfcl`` (imports verl);
- :mod:`integrations.verl.episode`: the episode it plays, verl-free (toolenv's rollout driver
  on verl's server manager);
- :mod:`integrations.verl.dataset`: the dataset rows (``agent_name`` = ``toolenv_bfcl``) and
  ``python -m integrations.verl.dataset OUT_DIR``.

``agent_loop.yaml`` is the ``actor_rollout_ref.rollout.agent.agent_loop_config_path`` file;
``docs/verl.md`` the recipe note. Importing this package imports nothing heavy.
"""
