"""The expert agent: replays each task's ground truth through the environment (reward 1.0).

python examples/expert_agent.py [--env BFCL-Travel-v0] [--format hermes] [--episodes 5]
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import toolenv  # noqa: F401  (registers the environments)
from toolenv.data import get_task
from toolenv.expert import expert_actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BFCL-Travel-v0")
    parser.add_argument("--format", default="hermes")
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    env = gym.make(args.env, call_format=args.format)
    for episode in range(args.episodes):
        obs, info = env.reset(seed=episode)
        actions = expert_actions(get_task(info["task_id"]), env.unwrapped.codec)
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        print(f"{info['task_id']:<32} reward {reward}")
    env.close()


if __name__ == "__main__":
    main()
