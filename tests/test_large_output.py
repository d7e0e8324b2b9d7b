"""Large output spaces (chapter 13): Huffman trees against an independent cost computation
and the entropy bounds, hierarchical softmax against brute force and normalisation, sampled
softmax against the full softmax, and the sampler by a chi-squared test."""

import heapq

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from softmaxbook.large_output import (hierarchical_softmax_log_prob, huffman_tree,
                                      sample_classes, sampled_softmax_loss)


def huffman_cost(counts):
    """Sum of the merged weights: the total weighted code length of an optimal code."""
    heap = list(map(float, counts))
    heapq.heapify(heap)
    total = 0.0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        total += a + b
        heapq.heappush(heap, a + b)
    return total


@pytest.mark.parametrize("V", [2, 3, 10, 257, 1000])
def test_huffman_tree_is_optimal_and_prefix_free(V):
    rng = np.random.default_rng(V)
    counts = rng.zipf(1.5, size=V).astype(float)
    paths, signs = huffman_tree(counts)
    lengths = (paths >= 0).sum(axis=1)
    assert np.sum(2.0 ** -lengths) == pytest.approx(1.0, abs=1e-12)   # Kraft, full tree
    assert np.dot(counts, lengths) == pytest.approx(huffman_cost(counts), rel=1e-12)
    p = counts / counts.sum()
    H = -np.sum(p * np.log2(p))
    assert H - 1e-12 <= np.dot(p, lengths) < H + 1
    codes = {tuple(s[: n]) for s, n in zip(signs, lengths)}
    assert len(codes) == V                                                # distinct
    for s, n in zip(signs, lengths):                                      # prefix-free
        for t, m in zip(signs, lengths):
            if m > n and V <= 257:
                assert tuple(t[:n]) != tuple(s[:n])
    assert np.all(paths[:, 0] == V - 2)                                   # the root
    assert set(paths[paths >= 0].tolist()) == set(range(V - 1))


def test_huffman_tree_deterministic_with_ties_and_zeros():
    a = huffman_tree([1, 1, 1, 1, 0])
    b = huffman_tree([1, 1, 1, 1, 0])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="at least 2 classes"):
        huffman_tree([3])
    with pytest.raises(ValueError, match="non-negative"):
        huffman_tree([1, -1])
    with pytest.raises(TypeError):
        huffman_tree(["a", "b"])


def brute_log_prob(h, u, path, sign):
    total = 0.0
    for node, b in zip(path, sign):
        if node < 0:
            break
        total += np.log(1 / (1 + np.exp(-b * (u[node] @ h))))
    return total


def test_hierarchical_softmax_normalised_and_matches_brute_force():
    rng = np.random.default_rng(1)
    V, d = 1000, 8
    paths, signs = huffman_tree(rng.zipf(1.3, size=V))
    u = rng.normal(0, 0.5, size=(V - 1, d))
    h = rng.normal(size=(4, d))
    logp = hierarchical_softmax_log_prob(h, u, paths, signs)
    assert logp.shape == (4, V)
    np.testing.assert_allclose(logsumexp(logp, axis=1), 0, atol=1e-12)
    for w in (0, 17, 999):
        np.testing.assert_allclose(logp[2, w], brute_log_prob(h[2], u, paths[w], signs[w]),
                                   rtol=1e-12)
    # a subset of the classes, and a single context
    sub = hierarchical_softmax_log_prob(h[0], u, paths[[5, 6]], signs[[5, 6]])
    np.testing.assert_allclose(sub, logp[0, [5, 6]], rtol=1e-14)
    # large scores do not overflow: log sigma is computed stably
    big = hierarchical_softmax_log_prob(1e4 * h[:1], u, paths, signs)
    assert np.all(np.isfinite(big)) and np.all(big <= 0)
    np.testing.assert_allclose(logsumexp(big), 0, atol=1e-9)


def test_hierarchical_softmax_bad_input():
    paths, signs = huffman_tree([3, 2, 1])
    u, h = np.ones((2, 4)), np.ones(4)
    with pytest.raises(ValueError, match="node_vectors must have shape"):
        hierarchical_softmax_log_prob(h, np.ones((2, 3)), paths, signs)
    with pytest.raises(TypeError, match="paths must be a 2-d integer array"):
        hierarchical_softmax_log_prob(h, u, paths.astype(float), signs)
    with pytest.raises(IndexError, match="node_vectors has only"):
        hierarchical_softmax_log_prob(h, u[:1], paths, signs)
    with pytest.raises(ValueError, match="signs must be"):
        hierarchical_softmax_log_prob(h, u, paths, 2 * signs)
    bad = paths.copy()
    bad[bad == -1] = -2
    with pytest.raises(ValueError, match="the only padding allowed is -1"):
        hierarchical_softmax_log_prob(h, u, bad, signs)
    assert hierarchical_softmax_log_prob(h.astype(np.float32), u.astype(np.float32),
                                         paths, signs).dtype == np.float32


def test_sampled_softmax_exact_case_and_correction():
    rng = np.random.default_rng(2)
    K, N = 6, 5
    z = rng.normal(size=(N, K))
    y = rng.integers(0, K, size=N)
    full = logsumexp(z, axis=1) - z[np.arange(N), y]
    others = np.array([np.delete(z[n], y[n]) for n in range(N)])
    lq = np.log(1 / K)
    got = sampled_softmax_loss(z[np.arange(N), y], others, np.full(N, lq),
                               np.full((N, K - 1), lq), reduction="none")
    np.testing.assert_allclose(got, full, rtol=1e-13)
    # a skewed proposal: the uncorrected loss is a different number
    q = rng.dirichlet(np.ones(K))
    lq_t, lq_s = np.log(q[y]), np.log(np.array([np.delete(q, yy) for yy in y]))
    corrected = sampled_softmax_loss(z[np.arange(N), y], others, lq_t, lq_s,
                                     reduction="none")
    plain = sampled_softmax_loss(z[np.arange(N), y], others, lq_t, lq_s, correct=False,
                                 reduction="none")
    np.testing.assert_allclose(plain, full, rtol=1e-13)        # all classes, no weights
    assert not np.allclose(corrected, plain)
    hand = (np.log(np.exp(z[np.arange(N), y] - lq_t)
                   + np.exp(others - lq_s).sum(axis=1)) - (z[np.arange(N), y] - lq_t))
    np.testing.assert_allclose(corrected, hand, rtol=1e-13)
    # a sample shared by the batch (broadcast), and the reductions
    zs_shared = np.broadcast_to(z[0, 1:], (N, K - 1))
    q0 = np.zeros((N, K - 1))
    shared = sampled_softmax_loss(z[:, 0], zs_shared, np.zeros(N), q0, reduction="none")
    assert shared.shape == (N,)
    assert sampled_softmax_loss(z[:, 0], zs_shared, np.zeros(N), q0) == \
        pytest.approx(shared.mean())
    assert sampled_softmax_loss(z[:, 0], zs_shared, np.zeros(N), q0,
                                reduction="sum") == pytest.approx(shared.sum())
    # float32 in, float32 out; -inf drops a sampled class
    l32 = sampled_softmax_loss(z[:, 0].astype(np.float32), zs_shared.astype(np.float32),
                               np.zeros(N), q0, reduction="none")
    assert l32.dtype == np.float32
    dropped = zs_shared.copy()
    dropped[:, 0] = -np.inf
    np.testing.assert_allclose(
        sampled_softmax_loss(z[:, 0], dropped, np.zeros(N), q0, reduction="none"),
        sampled_softmax_loss(z[:, 0], zs_shared[:, 1:], np.zeros(N), q0[:, 1:],
                             reduction="none"), rtol=1e-14)


def test_sampled_softmax_gradient_is_consistent_and_value_is_offset():
    """By importance sampling, the mean gradient tends to p - e_y as m grows; the value
    stays about log(m Q(y)) away from the cross-entropy."""
    rng = np.random.default_rng(8)
    K = 200
    z = rng.normal(0, 2, size=K)
    y = 3
    q = np.full(K, 1 / K)
    p = np.exp(z - logsumexp(z))
    full = logsumexp(z) - z[y]
    errors = []
    for m in (10, 1000):
        grads, vals = [], []
        for _ in range(400):
            s, lq = sample_classes(q, m, rng=rng)
            t, ss = z[y] - np.log(q[y]), z[s] - lq
            w = np.exp(np.concatenate([[t], ss]) - logsumexp(np.concatenate([[t], ss])))
            g = np.zeros(K)
            g[y] += w[0] - 1
            np.add.at(g, s, w[1:])
            grads.append(g)
            vals.append(sampled_softmax_loss(np.array([z[y]]), z[s][None], np.log(q[[y]]),
                                             lq[None]))
        errors.append(np.abs(np.mean(grads, axis=0) - (p - np.eye(K)[y])).max())
        offset = np.mean(vals) - full
        assert abs(offset - np.log(m * q[y])) < 1.0
    assert errors[1] < errors[0] / 5


def test_sampled_softmax_bad_input():
    z = np.zeros(3)
    with pytest.raises(ValueError, match="logits_sampled must have shape"):
        sampled_softmax_loss(z, np.zeros((2, 4)), z, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="logits_sampled must have shape"):
        sampled_softmax_loss(z, np.zeros(3), z, np.zeros(3))      # 1-d: ambiguous
    with pytest.raises(ValueError, match="finite or -inf"):
        sampled_softmax_loss(z, np.full((3, 2), np.inf), z, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="logits_true and log_q_true must be finite"):
        sampled_softmax_loss(z + np.inf, np.zeros((3, 2)), z, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="log_q_sampled must have the shape"):
        sampled_softmax_loss(z, np.zeros((3, 4)), z, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="correct must be True or False"):
        sampled_softmax_loss(z, np.zeros((3, 4)), z, np.zeros((3, 4)), correct=1)
    with pytest.raises(ValueError, match="must be finite"):
        sampled_softmax_loss(z, np.zeros((3, 4)), z - np.inf, np.zeros((3, 4)))


def test_sample_classes_distribution():
    q = np.array([0.5, 0.2, 0.2, 0.1])
    ids, lq = sample_classes(q, 20000, rng=np.random.default_rng(3))
    np.testing.assert_allclose(np.exp(lq), q[ids], rtol=1e-15)
    counts = np.bincount(ids, minlength=4)
    assert stats.chisquare(counts, 20000 * q).pvalue > 1e-3
    assert stats.chisquare(counts, 20000 * np.full(4, 0.25)).pvalue < 1e-10
    with pytest.raises(TypeError, match="Generator"):
        sample_classes(q, 3, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="sum to 1"):
        sample_classes([0.5, 0.6], 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="size must be a positive integer"):
        sample_classes(q, 0, rng=np.random.default_rng(0))
    p32 = (np.exp(np.arange(10.0)) / np.exp(np.arange(10.0)).sum()).astype(np.float32)
    assert sample_classes(p32, 5, rng=np.random.default_rng(0))[0].shape == (5,)
