"""The ground truth as assistant outputs: an oracle policy for tests, demos and SFT data.

For each user turn the oracle emits one tool step holding the turn's ground-truth calls (in
the chosen format, positional arguments bound to their names), then a short plain reply that
ends the turn. Turns whose ground truth is empty get only the reply.
"""

from __future__ import annotations

from typing import Any

from toolenv.data import Task
from toolenv.executor import Session
from toolenv.formats import Codec

DEFAULT_REPLY = "I have completed the request."


def oracle_turns(task: Task, codec: Codec, reply: str = DEFAULT_REPLY) -> list[list[Any]]:
    """``actions[t]`` is the list of assistant outputs the oracle sends in turn t."""
    binder = Session(task.involved_classes, {}, False)  # only used to bind positional arguments
    actions = []
    for calls in task.ground_truth_calls:
        turn: list[Any] = []
        if calls:
            turn.append(codec.render_calls([binder.canonical(call) for call in calls]))
        turn.append(reply)
        actions.append(turn)
    return actions


def oracle_actions(task: Task, codec: Codec, reply: str = DEFAULT_REPLY) -> list[Any]:
    """The oracle's outputs for a whole episode, in order."""
    return [action for turn in oracle_turns(task, codec, reply) for action in turn]
