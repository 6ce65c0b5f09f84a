"""Temporary alias while trainers/sft.py moves to toolenv.expert (removed before commit)."""
from toolenv.expert import *  # noqa: F403
from toolenv.expert import DEFAULT_REPLY  # noqa: F401
