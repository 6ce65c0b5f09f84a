"""The verifiers taskset/environment id ``toolenv-bfcl`` as the top-level module verifiers
imports (``vf-eval toolenv-bfcl``, ``vf-validate toolenv-bfcl``): put this folder on
``PYTHONPATH`` (or ``pip install -e integrations/verifiers/env``) next to toolenv."""

from integrations.verifiers.environment import BFCLTaskset, BFCLVerifiersEnv, load_environment

__all__ = ["BFCLTaskset", "BFCLVerifiersEnv", "load_environment"]
