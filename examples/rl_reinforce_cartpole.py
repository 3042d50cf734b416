"""REINFORCE (the cheatsheet's policy gradient) on gymnasium's CartPole-v1, through `GradientTape`.

    pip install gymnasium && python examples/rl_reinforce_cartpole.py

The policy is a dlcore MLP (4 -> 32 -> 2 logits, Dense layers) that samples actions from
softmax(logits) with `dl.random.categorical`. After each batch of `episodes_per_update` episodes
the script computes every step's discounted return-to-go G_t, subtracts a baseline (a running
mean of G per time step t, updated after every batch; time matters because early steps of a good
episode see much larger returns than late ones), scales the advantages by their batch standard
deviation, and ascends the policy gradient: loss = -mean(log pi(a_t | s_t) * advantage_t), its
gradient taken with `GradientTape` and applied with Adam. Training stops once the mean return of
the last batches reaches the target, or after `max_updates` updates; the final evaluation runs
the greedy policy (argmax of the logits) for 10 fresh episodes (the return is capped at 500 by
CartPole-v1's time limit). Seeded; a few seconds on a busy 2-core machine.

Set DLCORE_TARGET_RETURN=150 to make the script fail unless the average evaluation return reaches it.
"""
import os

import numpy as np

try:
    import gymnasium as gym
except ImportError as exc:  # pragma: no cover - exercised only where gymnasium is missing
    raise SystemExit("this example needs gymnasium: pip install gymnasium") from exc

import dlcore as dl
from dlcore import layers, ops

MAX_STEPS = 500  # CartPole-v1's time limit


def build_policy(state_dim, n_actions):
    return dl.Sequential([
        dl.Input((state_dim,)),
        layers.Dense(32, activation="relu"),
        layers.Dense(n_actions),  # logits
    ])


def run_episode(env, policy, seed, seed_generator=None):
    """One episode; samples from softmax(logits) when a seed generator is given, else acts greedily.
    Returns states (T, 4), actions (T,) and rewards (T,)."""
    state, _ = env.reset(seed=seed)
    states, actions, rewards = [], [], []
    done = False
    while not done:
        logits = policy(state[None].astype(np.float32))
        if seed_generator is None:
            action = int(np.argmax(np.asarray(logits)[0]))
        else:
            action = int(np.asarray(dl.random.categorical(logits, 1, seed=seed_generator))[0, 0])
        states.append(state)
        actions.append(action)
        state, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        done = terminated or truncated
    return np.array(states, dtype=np.float32), np.array(actions), np.array(rewards, dtype=np.float32)


def returns_to_go(rewards, gamma):
    """G_t = r_t + gamma r_{t+1} + ... for every t of one episode."""
    out = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def train(env, policy, target_return, max_updates=150, episodes_per_update=8, gamma=0.99,
          learning_rate=0.01, baseline_momentum=0.9, seed=0):
    """REINFORCE with a per-time-step running-mean baseline; returns the number of episodes run."""
    optimizer = dl.optimizers.Adam(learning_rate=learning_rate)
    seed_generator = dl.random.SeedGenerator(seed)
    baseline = np.zeros(MAX_STEPS, dtype=np.float32)
    seen = np.zeros(MAX_STEPS, dtype=bool)  # the baseline starts at the first batch's mean
    history, episode = [], 0
    for update in range(1, max_updates + 1):
        batch = [run_episode(env, policy, seed + episode + i, seed_generator) for i in range(episodes_per_update)]
        episode += episodes_per_update
        states = np.concatenate([s for s, _, _ in batch])
        actions = np.concatenate([a for _, a, _ in batch])
        G = [returns_to_go(r, gamma) for _, _, r in batch]
        t_index = np.concatenate([np.arange(len(g)) for g in G])
        G = np.concatenate(G)

        batch_mean = np.bincount(t_index, weights=G, minlength=MAX_STEPS) / np.maximum(
            np.bincount(t_index, minlength=MAX_STEPS), 1)
        present = np.bincount(t_index, minlength=MAX_STEPS) > 0
        advantages = G - baseline[t_index] * seen[t_index]
        new = present & ~seen
        baseline[new] = batch_mean[new]
        old = present & seen
        baseline[old] = baseline_momentum * baseline[old] + (1 - baseline_momentum) * batch_mean[old]
        seen |= present
        advantages = (advantages / (advantages.std() + 1e-8)).astype(np.float32)

        with dl.GradientTape() as tape:
            log_probs = ops.log_softmax(policy(states, training=True), axis=-1)
            taken = ops.take_along_axis(log_probs, actions[:, None], axis=1)[:, 0]
            loss = -ops.mean(taken * advantages)
        grads = tape.gradient(loss, policy.trainable_weights)
        optimizer.apply_gradients(zip(grads, policy.trainable_weights))

        history += [float(np.sum(r)) for _, _, r in batch]
        recent = float(np.mean(history[-2 * episodes_per_update:]))
        if update % 10 == 0:
            print(f"update {update}: {episode} episodes, mean return of the last {2 * episodes_per_update} "
                  f"{recent:.1f}", flush=True)
        if recent >= target_return * 1.2 or recent >= 0.95 * MAX_STEPS:
            break
    return episode


def main(seed=0):
    target = float(os.environ.get("DLCORE_TARGET_RETURN", "150"))
    dl.utils.set_random_seed(seed)
    env = gym.make("CartPole-v1")
    policy = build_policy(env.observation_space.shape[0], env.action_space.n)
    episodes = train(env, policy, target, seed=seed)
    average = float(np.mean([np.sum(run_episode(env, policy, 10_000_000 + seed + i)[2]) for i in range(10)]))
    env.close()
    print(f"REINFORCE on CartPole-v1: {episodes} training episodes")
    print(f"average return {average:.1f}  (greedy policy, 10 evaluation episodes)")

    if "DLCORE_TARGET_RETURN" in os.environ and average < target:
        raise SystemExit(f"average return {average:.1f} is below the target {target:.1f}")
    return average


if __name__ == "__main__":
    main()
