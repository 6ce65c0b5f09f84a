"""A random agent: samples actions from the action space, or random calls to the offered tools.

It shows that any text is a valid action: garbage ends a turn, malformed calls come back as
error results, and the episode always ends with a 0/1 reward.

    python examples/random_agent.py [--env BFCL-MultiTurn-v0] [--episodes 5]
"""

from __future__ import annotations

import argparse
import random

import gymnasium as gym

import toolenv  # noqa: F401
from toolenv.calls import Call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BFCL-MultiTurn-v0")
    parser.add_argument("--format", default="hermes")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = gym.make(args.env, call_format=args.format, max_steps_per_turn=5)
    env.action_space.seed(args.seed)
    for episode in range(args.episodes):
        obs, info = env.reset(seed=args.seed + episode)
        steps, done = 0, False
        while not done:
            if rng.random() < 0.5:
                tool = rng.choice(
                    info.get("tools") or env.unwrapped.tools and [t.openai() for t in env.unwrapped.tools]
                )
                action = env.unwrapped.codec.render_calls([Call(tool["function"]["name"], (), {})])
            else:
                action = env.action_space.sample()
            obs, reward, terminated, truncated, step_info = env.step(action)
            steps += 1
            done = terminated or truncated
        print(
            f"{step_info['task_id']:<32} steps {steps:>3} reward {reward} structure of last message: {step_info['structure']}"
        )
    env.close()


if __name__ == "__main__":
    main()
