"""OOD variants of BFCL tasks: seeded, composable transforms that keep every task solvable.

    >>> from ood_variants import make_variant
    >>> variant = make_variant(task, "rename_tools+shuffle_schema+python_list_format", seed=3)

A variant is a new :class:`toolenv.data.Task` carrying its own tool docs, the map from its names
back to the canonical backends, its rewritten ground truth and scenario, and its format options.
Importing this package registers it as toolenv's variant provider, so
``gym.make("BFCL-Travel-v0", ood="rename_tools", ood_seed=3)`` works.
"""

from ood_variants.registry import TRANSFORMS, Transform, check_spec, make_variant, make_variants, normalize_spec, parse_spec
from toolenv.registration import register_variant_provider

register_variant_provider(make_variant, check_spec)

__all__ = ["TRANSFORMS", "Transform", "check_spec", "make_variant", "make_variants", "normalize_spec", "parse_spec"]
