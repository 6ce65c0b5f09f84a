"""Choosing tasks: the paper's train/test split, filters by category, split, API and id, and
the seeded round-robin sample a small run takes (so it covers every category and API block)."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Iterable, Sequence

from toolenv.data import CATEGORIES, DataError, Task, get_task, load_tasks, normalize_api, normalize_category

SPLITS = ("all", "train", "test")


@lru_cache(maxsize=1)
def paper_split() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The paper's split of entry indices 0–199: ``random.seed(42)``, shuffle, first 100 train,
    the other 100 test; the same indices in every category."""
    indices = list(range(200))
    random.Random(42).shuffle(indices)
    return tuple(indices[:100]), tuple(indices[100:])


def select_tasks(
    categories: str | Iterable[str] | None = None,
    split: str = "all",
    apis: Iterable[str] | None = None,
    task_ids: Iterable[str] | None = None,
    tasks: Iterable[Task] | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    data_version: str | None = None,
) -> list[Task]:
    """Tasks filtered by category, the paper's split (``all``/``train``/``test``), involved APIs
    (class names such as ``"TravelAPI"`` or short names such as ``"travel"``, any case; see
    :data:`API_SHORT_NAMES`), and explicit ids. A one-line error for an unknown category, split
    or API, or for an empty selection (naming the filters that produced it).

    ``limit`` N keeps N of the selected tasks, taken round-robin over the categories (in the
    order given) from a ``seed``-ed shuffle of entry indices, so that a small sample covers
    every category and API block (:func:`sample_round_robin`).

    ``tasks`` filters the given tasks (e.g. from :func:`load_task_file`) instead of the official
    ones of ``data_version`` (a release; default: the process's)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if isinstance(apis, str):  # one name, not its characters
        apis = [apis]
    # names are checked before any data is read, so a typo fails fast and says what is valid
    wanted_apis = None if apis is None else {normalize_api(name) for name in apis}
    if isinstance(task_ids, str):
        task_ids = [task_ids]
    source = "official"
    if tasks is None:
        tasks = load_tasks(categories, data_version)
        # labelled ids (curriculum cuts, toolenv.curriculum) are not official entries: resolve
        # them, so that an environment asked for one id plays the same cut task in any process
        labelled = [get_task(i, data_version) for i in dict.fromkeys(task_ids or ()) if "@" in i]
        tasks = tasks + labelled
    else:
        source = "given"
        wanted = set(map(normalize_category, [categories] if isinstance(categories, str) else categories or CATEGORIES))
        tasks = [t for t in tasks if t.category in wanted]
    filters = [f"categories={_shown(categories, CATEGORIES)}"]
    if split != "all":
        keep = set(paper_split()[0 if split == "train" else 1])
        tasks = [t for t in tasks if t.index in keep]
        filters.append(f"split={split}")
    if wanted_apis is not None:
        tasks = [t for t in tasks if wanted_apis & set(t.involved_classes)]
        filters.append(f"apis={','.join(sorted(wanted_apis))}")
    if task_ids is not None:
        ids = set(task_ids)
        tasks = [t for t in tasks if t.id in ids]
        shown = sorted(ids)
        filters.append(f"task_ids={','.join(shown[:5])}{',…' if len(shown) > 5 else ''}")
    if not tasks:
        raise DataError(f"the task selection is empty: no {source} task matches {' '.join(filters)}")
    if limit is not None:
        order = [
            normalize_category(c) for c in ([categories] if isinstance(categories, str) else categories or CATEGORIES)
        ]
        tasks = sample_round_robin(tasks, order, limit, seed)
    return tasks


def sample_round_robin(tasks: Sequence[Task], categories: Sequence[str], limit: int, seed: int) -> list[Task]:
    """At most ``limit`` of ``tasks``: entry indices in a ``seed``-ed shuffle, and for each index
    its task in every category in ``categories`` order, until ``limit`` are taken."""
    if limit < 1:
        raise DataError(f"limit must be >= 1 (got {limit})")
    by_index = {(t.category, t.index): t for t in tasks}
    indices = sorted({t.index for t in tasks})
    random.Random(seed).shuffle(indices)
    picked: list[Task] = []
    for index in indices:
        for category in categories:
            if (category, index) in by_index and len(picked) < limit:
                picked.append(by_index[(category, index)])
    return picked


def _shown(categories: str | Iterable[str] | None, default: Iterable[str]) -> str:
    """The categories filter as the empty-selection message shows it."""
    if categories is None:
        categories = default
    elif isinstance(categories, str):
        categories = [categories]
    return ",".join(categories)
