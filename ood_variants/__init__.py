"""OOD variants of BFCL tasks: seeded, composable transforms that keep every task solvable.

    >>> from ood_variants import make_variant
    >>> variant = make_variant(task, "rename_tools+shuffle_schema+python_list_format", seed=3)

A variant is a new :class:`toolenv.data.Task` carrying its own tool docs, the map from its names
back to the canonical backends, its rewritten ground truth and scenario, and its format options.
:mod:`ood_variants.registry` is toolenv's variant builder (entry-point group
``toolenv.variants``), so ``gym.make("BFCL-Travel-v0", ood="rename_tools", ood_seed=3)`` works.
"""

from ood_variants.registry import (
    TRANSFORMS,
    Transform,
    check_spec,
    make_variant,
    make_variants,
    normalize_spec,
    parse_spec,
)

__all__ = ["TRANSFORMS", "Transform", "check_spec", "make_variant", "make_variants", "normalize_spec", "parse_spec"]
