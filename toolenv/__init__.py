"""toolenv: BFCL-V3 multi-turn tool use as safe, fast, faithful Python.

The layers (see README): ``envs`` (the eight backends) → ``toolenv`` (data, calls, executor,
environments) → ``evaluators`` → ``ood_variants`` → ``trainers``.
"""

from toolenv.calls import Call, CallSyntaxError, parse_python_call, parse_python_calls
from toolenv.executor import Result, Session
from toolenv.registration import ENV_IDS, register_envs

register_envs()  # so that gym.make("BFCL-Travel-v0") works after `import toolenv`

__version__ = "0.1.0"

__all__ = [
    "ENV_IDS",
    "Call",
    "CallSyntaxError",
    "Result",
    "Session",
    "register_envs",
    "parse_python_call",
    "parse_python_calls",
    "__version__",
]
