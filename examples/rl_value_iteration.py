"""Solve a Markov decision process (the cheatsheet's MDP) by value iteration and by policy iteration.

    python examples/rl_value_iteration.py

The MDP is the classic 4x3 gridworld (Russell & Norvig, "Artificial Intelligence: A Modern
Approach", ch. 17):

- states: the 11 free cells of a 4-column, 3-row grid (cell (row 1, column 1) is a wall); the
  cells (0, 3) and (1, 3) are terminal, worth +1 and -1;
- actions: up, right, down, left;
- transitions (slippery moves): the intended move happens with probability 0.8, each of the two
  perpendicular moves with probability 0.1; a move into the wall or off the grid stays put;
- rewards: -0.04 for every step taken from a non-terminal cell, plus the terminal's value on
  entering it (the episode then ends);
- discount: gamma = 0.99.

Value iteration repeats the Bellman optimality backup V(s) <- max_a sum_s' P(s'|s,a) [R + gamma V(s')]
until the largest change is below a tolerance; policy iteration alternates exact policy evaluation
(a linear solve) with greedy improvement until the policy is stable. The script prints both
policies as arrows and the value table, and reports the fraction of states on which the two
methods choose an optimal action of the other (their "policy agreement").

Set DLCORE_TARGET_AGREEMENT=1.0 to make the script fail unless the two methods agree on every state
(same greedy actions, values within 1e-6).
"""
import os

import numpy as np

ROWS, COLS = 3, 4
WALLS = {(1, 1)}
TERMINALS = {(0, 3): 1.0, (1, 3): -1.0}
STEP_REWARD = -0.04
SLIP = 0.1  # probability of each perpendicular move; the intended move gets 1 - 2 * SLIP
ACTIONS = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left
ARROWS = "↑→↓←"


def build_mdp(step_reward=STEP_REWARD, slip=SLIP):
    """The gridworld as arrays: P (S, A, S) transition probabilities, R (S, A, S) rewards,
    `terminal` (S,) booleans and `cells`, the (row, col) of each state index."""
    cells = [(r, c) for r in range(ROWS) for c in range(COLS) if (r, c) not in WALLS]
    index = {cell: i for i, cell in enumerate(cells)}
    n_s, n_a = len(cells), len(ACTIONS)
    P = np.zeros((n_s, n_a, n_s))
    R = np.zeros((n_s, n_a, n_s))
    terminal = np.array([cell in TERMINALS for cell in cells])
    for s, (r, c) in enumerate(cells):
        if terminal[s]:
            continue  # absorbing: no transitions, value 0 after the episode ends
        for a in range(n_a):
            # intended direction, then the two perpendicular ones (a+1 and a-1 modulo 4)
            for direction, prob in ((a, 1.0 - 2 * slip), ((a + 1) % 4, slip), ((a - 1) % 4, slip)):
                dr, dc = ACTIONS[direction]
                nxt = (r + dr, c + dc)
                if not (0 <= nxt[0] < ROWS and 0 <= nxt[1] < COLS) or nxt in WALLS:
                    nxt = (r, c)
                s2 = index[nxt]
                P[s, a, s2] += prob
                R[s, a, s2] = step_reward + TERMINALS.get(nxt, 0.0)
    return P, R, terminal, cells


def q_values(P, R, V, gamma):
    """Q(s, a) = sum_s' P(s'|s,a) [R(s,a,s') + gamma V(s')], shape (S, A)."""
    return np.einsum("ijk,ijk->ij", P, R + gamma * V[None, None, :])


def value_iteration(P, R, terminal, gamma, tol=1e-10, max_iter=10_000):
    """Optimal values (S,) and greedy policy (S,) by repeated Bellman optimality backups."""
    V = np.zeros(P.shape[0])
    for sweep in range(1, max_iter + 1):
        V_new = np.where(terminal, 0.0, q_values(P, R, V, gamma).max(axis=1))
        delta = np.max(np.abs(V_new - V))
        V = V_new
        if delta < tol:
            break
    else:
        raise RuntimeError(f"value iteration did not converge in {max_iter} sweeps (last change {delta:.3g})")
    return V, q_values(P, R, V, gamma).argmax(axis=1), sweep


def policy_evaluation(P, R, terminal, policy, gamma):
    """Exact values of a deterministic policy: solve (I - gamma P_pi) V = r_pi on the non-terminals."""
    n = P.shape[0]
    P_pi = P[np.arange(n), policy]  # (S, S)
    r_pi = np.sum(P_pi * R[np.arange(n), policy], axis=1)
    live = ~terminal
    A = np.eye(live.sum()) - gamma * P_pi[np.ix_(live, live)]
    V = np.zeros(n)
    V[live] = np.linalg.solve(A, r_pi[live])
    return V


def policy_iteration(P, R, terminal, gamma, max_iter=1_000):
    """Optimal values and policy by alternating exact evaluation and greedy improvement."""
    policy = np.zeros(P.shape[0], dtype=int)  # always "up"
    for rounds in range(1, max_iter + 1):
        V = policy_evaluation(P, R, terminal, policy, gamma)
        Q = q_values(P, R, V, gamma)
        # keep the current action on ties, so the loop cannot cycle between equally good actions
        current = Q[np.arange(len(policy)), policy]
        improved = np.where(Q.max(axis=1) > current + 1e-12, Q.argmax(axis=1), policy)
        if np.array_equal(improved, policy):
            return V, policy, rounds
        policy = improved
    raise RuntimeError(f"policy iteration did not converge in {max_iter} rounds")


def render(cells, terminal, grid_values):
    """One text line per grid row: arrows, '#' for walls, '+1'/'-1' for terminals, or numbers."""
    lookup = dict(zip(cells, grid_values))
    lines = []
    for r in range(ROWS):
        row = []
        for c in range(COLS):
            if (r, c) in WALLS:
                row.append("#")
            elif (r, c) in TERMINALS:
                row.append(f"{TERMINALS[(r, c)]:+.0f}")
            else:
                row.append(lookup[(r, c)])
        lines.append(" ".join(f"{cell:>6}" for cell in row))
    return "\n".join(lines)


def main(gamma=0.99):
    P, R, terminal, cells = build_mdp()
    V_vi, pi_vi, sweeps = value_iteration(P, R, terminal, gamma)
    V_pi, pi_pi, rounds = policy_iteration(P, R, terminal, gamma)

    print(f"gridworld {ROWS}x{COLS}: {len(cells)} states, {len(ACTIONS)} actions, gamma {gamma}")
    print(f"value iteration: {sweeps} sweeps; policy iteration: {rounds} rounds")
    print("optimal policy (value iteration):")
    print(render(cells, terminal, [ARROWS[a] for a in pi_vi]))
    print("optimal policy (policy iteration):")
    print(render(cells, terminal, [ARROWS[a] for a in pi_pi]))
    print("optimal values:")
    print(render(cells, terminal, [f"{v:.3f}" for v in V_vi]))

    # Two policies "agree" on a state when each one's action is optimal under the other's values
    # (ties between equally good actions are not disagreements).
    live = ~terminal
    Q_vi, Q_pi = q_values(P, R, V_vi, gamma), q_values(P, R, V_pi, gamma)
    n = len(cells)
    same = (np.abs(Q_pi[np.arange(n), pi_vi] - V_pi) < 1e-6) & (np.abs(Q_vi[np.arange(n), pi_pi] - V_vi) < 1e-6)
    agreement = float(np.mean(same[live]))
    value_gap = float(np.max(np.abs(V_vi - V_pi)))
    if value_gap > 1e-6:
        agreement = 0.0
    print(f"max |V_vi - V_pi| {value_gap:.2e}")
    print(f"policy agreement {agreement:.4f}")

    target = os.environ.get("DLCORE_TARGET_AGREEMENT")
    if target is not None and agreement < float(target):
        raise SystemExit(f"policy agreement {agreement:.4f} is below the target {float(target):.4f}")
    return agreement


if __name__ == "__main__":
    main()
