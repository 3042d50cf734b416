"""Tabular Q-learning (the cheatsheet's model-free RL) on gymnasium's slippery FrozenLake-v1 (4x4).

    pip install gymnasium && python examples/rl_q_learning.py

The agent keeps a table Q(s, a) of 16 states x 4 actions and, after every step, moves it towards
the one-step target: Q(s, a) += alpha * (r + gamma * max_a' Q(s', a') - Q(s, a)) (no bootstrap
from a terminal state). It explores epsilon-greedily, epsilon decaying linearly from 1.0 to 0.05
over the first 80% of the training episodes; ties between equal Q-values break at random, so the
untrained agent is not stuck on "left". The ice is slippery (the intended move happens with
probability 1/3), so even the optimal policy reaches the goal in only about 74-82% of episodes;
the evaluation runs the greedy policy for 1000 fresh episodes. It trains in a few seconds.

Set DLCORE_TARGET_SUCCESS=0.6 to make the script fail unless the greedy policy's success rate
over the evaluation episodes reaches it.
"""
import os

import numpy as np

try:
    import gymnasium as gym
except ImportError as exc:  # pragma: no cover - exercised only where gymnasium is missing
    raise SystemExit("this example needs gymnasium: pip install gymnasium") from exc

ARROWS = "←↓→↑"  # FrozenLake's action order: left, down, right, up


def greedy(q_row, rng):
    """The index of the largest value, ties broken at random."""
    best = np.flatnonzero(q_row == q_row.max())
    return int(rng.choice(best))


def train(env, episodes, alpha, gamma, eps_start, eps_end, rng, seed):
    """Q-learning; returns the (n_states, n_actions) table."""
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    decay_episodes = int(0.8 * episodes)
    for episode in range(episodes):
        eps = max(eps_end, eps_start - (eps_start - eps_end) * episode / decay_episodes)
        state, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action = int(rng.integers(Q.shape[1])) if rng.random() < eps else greedy(Q[state], rng)
            nxt, reward, terminated, truncated, _ = env.step(action)
            target = reward + (0.0 if terminated else gamma * Q[nxt].max())
            Q[state, action] += alpha * (target - Q[state, action])
            state, done = nxt, terminated or truncated
    return Q


def evaluate(env, Q, episodes, seed):
    """Success rate of the greedy policy (argmax, first index on ties) over fresh episodes."""
    successes = 0
    for episode in range(episodes):
        state, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            state, reward, terminated, truncated, _ = env.step(int(np.argmax(Q[state])))
            done = terminated or truncated
        successes += reward > 0
    return successes / episodes


def main(episodes=6000, alpha=0.1, gamma=0.99, eval_episodes=1000, seed=0):
    rng = np.random.default_rng(seed)
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    env.action_space.seed(seed)
    Q = train(env, episodes, alpha, gamma, 1.0, 0.05, rng, seed)
    success = evaluate(env, Q, eval_episodes, seed=10_000_000 + seed)
    env.close()

    desc = env.unwrapped.desc.astype(str)
    print(f"Q-learning on FrozenLake-v1 4x4 slippery: {episodes} episodes, alpha {alpha}, gamma {gamma}")
    print("greedy policy (S start, H hole, G goal):")
    for r, row in enumerate(desc):
        cells = [ch if ch in "HG" else ARROWS[int(np.argmax(Q[r * len(row) + c]))] for c, ch in enumerate(row)]
        print("  " + " ".join(cells))
    print(f"success rate {success:.4f}  (greedy policy, {eval_episodes} evaluation episodes)")

    target = os.environ.get("DLCORE_TARGET_SUCCESS")
    if target is not None and success < float(target):
        raise SystemExit(f"success rate {success:.4f} is below the target {float(target):.4f}")
    return success


if __name__ == "__main__":
    main()
