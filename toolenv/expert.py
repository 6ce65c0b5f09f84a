"""The expert policy: the ground truth as assistant outputs, for tests, demos and SFT data.

"Oracle", in this project, means the official bfcl-eval engine that tests compare against;
this policy is the *expert*, as in OPS's expert rollouts. For each user turn the expert emits
one tool step holding the turn's ground-truth calls (in the chosen format, positional
arguments bound to their names), then a short plain reply that ends the turn. Turns whose
ground truth is empty get only the reply.
"""

from __future__ import annotations

from typing import Any

from toolenv.data import Task
from toolenv.executor import keyword_call
from toolenv.formats import Codec

DEFAULT_REPLY = "I have completed the request."


def expert_turns(task: Task, codec: Codec, reply: str = DEFAULT_REPLY) -> list[list[Any]]:
    """``actions[t]`` is the list of assistant outputs the expert sends in turn t."""
    actions = []
    for calls in task.ground_truth_calls:
        turn: list[Any] = []
        if calls:
            turn.append(codec.render_calls([keyword_call(call, task.involved_classes, task.release) for call in calls]))
        turn.append(reply)
        actions.append(turn)
    return actions


def expert_actions(task: Task, codec: Codec, reply: str = DEFAULT_REPLY) -> list[Any]:
    """The expert's outputs for a whole episode, in order."""
    return [action for turn in expert_turns(task, codec, reply) for action in turn]
