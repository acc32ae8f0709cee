"""The reference for duplicate groups, shared by test/python/test_index_dupes.py and
test/serve/test_serve_dupes.py: every pair scored by numpy, then joined transitively."""
import numpy as np


def components(data, threshold):
    """Groups (sorted row lists, by first row) of the graph cosine >= threshold, by numpy over all pairs,
    and the cosine matrix."""
    x = data / np.linalg.norm(data, axis=1, keepdims=True)
    sim = x.astype(np.float64) @ x.astype(np.float64).T
    parent = list(range(len(data)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i, j in zip(*np.nonzero(np.triu(sim >= threshold, 1))):
        parent[find(i)] = find(j)
    groups = {}
    for i in range(len(data)):
        groups.setdefault(find(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1), sim
