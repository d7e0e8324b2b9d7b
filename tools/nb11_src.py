"""Source of chapter 11 (softmax attention), written as cells; `python tools/nb11_src.py`
writes notebooks/11_attention.ipynb. Kept so that the chapter can be regenerated while it is
being written; the notebook is the book's source of truth once committed."""

import json
import sys
from pathlib import Path

CELLS = []


def md(text, **meta):
    CELLS.append(("markdown", text.strip("\n") + "\n", meta))


def code(text, **meta):
    CELLS.append(("code", text.strip("\n") + "\n", meta))


# --------------------------------------------------------------------------- opening
md(r"""
# Softmax attention

Most readers today meet softmax inside a transformer, where it is computed more often than
anywhere else: once per query, over all the keys, in every head of every layer. This chapter
builds scaled dot-product attention from the pieces of the earlier chapters: the softmax
Jacobian (chapter 3) gives its backward pass, log-sum-exp (chapter 2) is the one number per
query that a memory-efficient implementation keeps, and the online normaliser of chapter 10
turns it into the tiled algorithm of FlashAttention. Along the way we measure why the scores
are divided by $\sqrt d$, settle what a query that may attend to nothing should return, and
look at the one thing softmax attention cannot do: say "none of the above".

```{admonition} Learning goals
:class: tip
After this chapter you can

* write attention as one softmax per query and prove that it is permutation equivariant;
* derive $\operatorname{Var}(\mathbf q\cdot\mathbf k) = d$ and say what the $1/\sqrt d$ fixes
  and what it does not;
* compare the conventions for a fully masked row and choose one;
* derive the backward pass, including $D_i = \sum_j P_{ij}\,dP_{ij} = \langle d\mathbf O_i,
  \mathbf O_i\rangle$, and check it against finite differences;
* compute attention tile by tile, forward and backward, storing only $\mathbf O$ and the
  log-sum-exp $L$, and count what that saves;
* explain attention sinks, softmax$_1$ and why attention disperses over long inputs.
```

**Prerequisites.** Chapters 2 (log-sum-exp), 3 (the Jacobian and its vector product) and 10
(the online normaliser and its merge); matrix products and the chain rule. The symbols of this
chapter are listed on the {doc}`../book/notation` page: $N$ queries, $M$ keys, bold
$\mathbf K$ for the key matrix (the number of classes, $K$, does not appear in this chapter).
""")

code(r"""
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import sympy.stats as stats
from scipy.special import logsumexp as scipy_logsumexp

from softmaxbook import (
    attention,
    flash_attention,
    flash_attention_backward,
    softmax,
    softmax_jacobian,
)
from softmaxbook.glue import glue
from softmaxbook.plotting import use_book_style

sp.init_printing(use_latex="mathjax")
use_book_style()
rng = np.random.default_rng(20261111)
""")

# --------------------------------------------------------------------------- definition
md(r"""
## One softmax per query

A head of attention receives $N$ queries $\mathbf q_i$ and $M$ keys $\mathbf k_j$, all in
$\mathbb R^d$, and $M$ values $\mathbf v_j \in \mathbb R^e$, stacked as the rows of
$\mathbf Q$ ($N\times d$), $\mathbf K$ ($M\times d$) and $\mathbf V$ ($M\times e$). Query
$i$ scores every key, the scores go through a softmax, and the output is the resulting
average of the values {cite}`vaswani2017`:

$$
\mathbf S = \frac{\mathbf Q\mathbf K^\top}{\sqrt d}, \qquad
\mathbf P = \operatorname{softmax}(\mathbf S)\ \text{(row by row)}, \qquad
\mathbf O = \mathbf P\mathbf V,
$$

so that output $i$ is $\mathbf o_i = \sum_{j=1}^{M} P_{ij}\,\mathbf v_j$.

Row $i$ of $\mathbf P$ is a probability vector over the keys, exactly the object of chapter 1
with the keys in the role of the classes. The package's `attention` computes this; the cell
below rebuilds it from the definition for a small example and compares.
""")

code(r"""
N, M, d, e = 5, 7, 4, 3
Q, K, V = (rng.normal(size=shape) for shape in ((N, d), (M, d), (M, e)))
S = Q @ K.T / np.sqrt(d)
P = softmax(S, axis=1)
np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-15)
np.testing.assert_allclose(attention(Q, K, V), P @ V, rtol=1e-13)
print("rows of P sum to one; attention(Q, K, V) = softmax(S) V")
""")

md(r"""
Attention has no notion of order. Permuting the queries permutes the outputs in the same way,
because each output depends on its own query only; permuting the keys and the values together
changes nothing, because the sum over $j$ does not care in which order its terms come. So
attention is *permutation equivariant* in the queries and *invariant* in the key–value pairs;
position must be injected from outside (positional encodings, or a causal mask, below). The
check permutes both and also confirms that permuting the keys alone, which breaks the pairing
with the values, does change the result:
""")

code(r"""
perm_q, perm_k = rng.permutation(N), rng.permutation(M)
out = attention(Q, K, V)
np.testing.assert_allclose(
    attention(Q[perm_q], K, V), out[perm_q], rtol=1e-13
)
np.testing.assert_allclose(
    attention(Q, K[perm_k], V[perm_k]), out, rtol=1e-13
)
assert not np.allclose(attention(Q, K[perm_k], V), out)
print("equivariant in the queries, invariant in the key-value pairs")
""")

md(r"""
The score need not be a dot product. The first attention mechanism for translation scored a
key with a small network, $\mathbf w^\top\tanh(\mathbf W_1\mathbf q + \mathbf W_2\mathbf k)$,
*additive* attention {cite}`bahdanau2015`. The transformer uses the scaled dot product because
all $NM$ scores are then one matrix product, which hardware does best; its authors note that
the two perform similarly for small $d$ and that additive attention did better than the
*unscaled* dot product for larger $d$, which is their reason for the scaling
{cite}`vaswani2017`. Whatever the score, the softmax that follows is the same, and everything
below applies to it.
""")

# --------------------------------------------------------------------------- sqrt d
md(r"""
## Why divide by $\sqrt d$

Suppose the $2d$ entries of a query and a key are independent with mean 0 and variance 1,
as they roughly are at initialisation. Each product $q_l k_l$ has mean 0 and variance
$\mathbb E[q_l^2]\,\mathbb E[k_l^2] = 1$, and the $d$ products are independent, so their sum
has variance $d$: the raw scores spread like $\sqrt d$. SymPy's statistics module computes the
variance exactly for Gaussian entries of any variance $\sigma^2$, where it is $d\sigma^4$
(for $d$ up to 3: the integrals grow quickly with $d$, and the argument above covers every
$d$):
""")

code(r"""
sigma = sp.symbols("sigma", positive=True)
for d_ in (1, 2, 3):
    qs = [stats.Normal(f"q{l}", 0, sigma) for l in range(d_)]
    ks = [stats.Normal(f"k{l}", 0, sigma) for l in range(d_)]
    dot = sum(a * b for a, b in zip(qs, ks))
    assert sp.simplify(stats.variance(dot) - d_ * sigma**4) == 0
    assert sp.simplify(stats.E(dot)) == 0
print("E[q.k] = 0 and Var(q.k) = d sigma^4 for d = 1, 2, 3")
""")

md(r"""
Sampling confirms it at a realistic width: at $d = 64$ the dot products of independent
standard normal vectors have variance close to 64, and after division by $\sqrt d$ close to 1.
""")

code(r"""
d_big = 64
qq, kk = rng.normal(size=(2, 50_000, d_big))
dots = np.einsum("nd,nd->n", qq, kk)
var_raw, var_scaled = dots.var(), (dots / np.sqrt(d_big)).var()
print(
    f"d = {d_big}: Var(q.k) = {var_raw:.1f}, "
    f"Var(q.k/sqrt d) = {var_scaled:.3f}"
)
se = d_big * np.sqrt(2 / (len(dots) - 1)) * 1.2  # about 1.2 standard errors
assert abs(var_raw - d_big) < 4 * se
glue("var_raw_64", float(var_raw))
glue("var_scaled_64", float(var_scaled))
""")

md(r"""
Why does the spread matter? Softmax is not scale invariant (chapter 1): multiplying the
scores by $\sqrt d$ is a temperature of $1/\sqrt d$, and a cold softmax is nearly one-hot.
Then the output copies a single value, and the gradient vanishes, since the Jacobian
$\operatorname{diag}(\mathbf p) - \mathbf p\mathbf p^\top$ of chapter 3 tends to zero as
$\mathbf p$ tends to a vertex. The next cell measures this for $M = 64$ keys and random
queries and keys, at $d = 64$ and $d = 512$, with and without the scaling: the median
largest weight, the mean entropy of a row (at most $\log M$), and the share of rows whose
Jacobian has all but vanished, $\lVert\mathbf J\rVert_2 < 10^{-3}$ (its largest possible
value is $\tfrac12$).
""")

code(r"""
def row_stats(s):
    # median max weight, mean entropy, share of rows with ||J||_2 < 1e-3
    p = softmax(s, axis=1)
    ent = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)
    jac_norm = np.linalg.eigvalsh(softmax_jacobian(s))[:, -1]
    return np.median(p.max(axis=1)), ent.mean(), np.mean(jac_norm < 1e-3)


keys_M, rows = 64, 500
table = {}
for d_ in (64, 512):
    raw = rng.normal(size=(rows, d_)) @ rng.normal(size=(keys_M, d_)).T
    table[d_, "raw"] = row_stats(raw)
    table[d_, "scaled"] = row_stats(raw / np.sqrt(d_))
print(f"M = {keys_M} keys; log M = {np.log(keys_M):.2f}")
print(f"{'d':>4}  {'scores':<7} {'median max weight':>17} "
      f"{'mean entropy':>13} {'||J|| < 1e-3':>13}")
for (d_, kind), (w, h, v) in table.items():
    print(f"{d_:>4}  {kind:<7} {w:>17.3f} {h:>13.2f} {v:>13.1%}")
""")

code(r"""
assert table[512, "raw"][0] > 0.99 and table[512, "raw"][2] > 0.2
assert table[64, "raw"][2] > 0 and table[64, "scaled"][2] == 0
assert abs(table[64, "scaled"][1] - table[512, "scaled"][1]) < 0.05
for key, name in [((64, "raw"), "r64"), ((512, "raw"), "r512"),
                  ((64, "scaled"), "s64"), ((512, "scaled"), "s512")]:
    glue(f"maxw_{name}", float(table[key][0]))
    glue(f"ent_{name}", float(table[key][1]))
    glue(f"dead_{name}", float(100 * table[key][2]))
glue("log_M", float(np.log(keys_M)))
""")

md(r"""
Without the scaling, the median row at $d = 512$ puts {glue:text}`maxw_r512:.3f` of its
weight on one key, its entropy is {glue:text}`ent_r512:.2f` nats of a possible
{glue:text}`log_M:.2f`, and for {glue:text}`dead_r512:.0f`% of the rows the Jacobian has
all but vanished: those queries learn nothing from this step. Even at $d = 64$
{glue:text}`dead_r64:.1f`% of the rows are in that state. With the scaling the statistics do
not depend on $d$ at all (median largest weight {glue:text}`maxw_s64:.3f` at both widths,
entropy {glue:text}`ent_s64:.2f` and {glue:text}`ent_s512:.2f`), which is the point: the
width of a head no longer sets the temperature.

Two things the scaling is *not*. It is not overflow protection: the max shift of chapter 9
makes softmax safe for scores of any size, scaled or not, and `attention` computes the
unscaled case above without complaint (a naive `exp` of the raw float32 scores at $d = 512$
overflows, as the next cell shows). And it fixes the variance only where the entries have unit
variance, that is at initialisation: with entries of variance $\sigma^2$ the scaled scores have
variance $\sigma^4$, and training moves $\sigma$ freely. The sharpness of a trained head is
learned, not set by $\sqrt d$.
""")

code(r"""
raw32 = (rng.normal(size=(1000, 512)) @ rng.normal(size=(64, 512)).T).astype(
    np.float32
)
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(raw32) / np.exp(raw32).sum(axis=1, keepdims=True)
bad_rows = np.mean(~np.isfinite(naive).all(axis=1))
safe = softmax(raw32, axis=1)
assert bad_rows > 0 and np.all(np.isfinite(safe))
print(f"largest raw score {raw32.max():.0f}: the naive exp fails on "
      f"{bad_rows:.0%} of the rows,\nthe shifted softmax on none")
""")

# --------------------------------------------------------------------------- masks
md(r"""
## Masks, and the row that may attend to nothing

Two masks are everywhere. A *padding* mask stops queries from attending to the filler
positions of sequences shorter than the batch's longest. A *causal* mask lets position $i$
attend only to positions $j \le i$, so that a language model cannot look ahead. Both say, for
each pair $(i, j)$, whether $j$ is allowed; the package takes a boolean array, True where
attention is allowed, and `causal=True` for the second.
""")

code(r"""
lengths = np.array([5, 3])  # two sequences, padded to 5
Nb = 5
pad = np.arange(Nb)[None, :] < lengths[:, None]  # (batch, key)
mask = pad[:, None, :]  # every query of a sequence sees its real keys
Qb, Kb, Vb = (rng.normal(size=(2, Nb, 4)) for _ in range(3))
outb = attention(Qb, Kb, Vb, mask=mask, causal=True)
# sequence 2 alone, without its padding, gives the same first three rows
short = attention(Qb[1, :3], Kb[1, :3], Vb[1, :3], causal=True)
np.testing.assert_allclose(outb[1, :3], short, rtol=1e-13)
print("masked batch row = unpadded sequence, causal order respected")
""")

md(r"""
What if a query may attend to *no* key? It happens: a padding query in a padding mask that
masks queries as well as keys, a block of a block-sparse pattern, a sequence of length zero.
The softmax of an empty set of scores is undefined, and the three common ways of writing the
mask give three different answers. Masking with $-\infty$ gives $e^{-\infty}/\sum e^{-\infty}
= 0/0$, NaN. Masking with a large finite negative number, such as $-10^9$, gives a row of
equal scores and so a *uniform* average over the masked keys: the query silently attends to
padding. And in float16, whose largest number is $65504$, the popular $-10^6$ (or anything
past the range) becomes $-\infty$ again, so the same code returns NaN. The cell computes all
of them for a row whose keys are all masked (row 2), next to a partly masked one (row 1):
""")

code(r"""
s_demo = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
allowed = np.array([[True, True, False], [False, False, False]])
with np.errstate(invalid="ignore", over="ignore"):
    conventions = {
        "-inf": softmax(np.where(allowed, s_demo, -np.inf), axis=1),
        "-1e9": softmax(np.where(allowed, s_demo, -1e9), axis=1),
        "-1e6, float16": softmax(
            np.where(allowed, s_demo, -1e6).astype(np.float16), axis=1
        ),
    }
for name, p in conventions.items():
    print(f"{name:>13}: row 1 {np.round(p[0].astype(float), 3)}, "
          f"row 2 {np.round(p[1].astype(float), 3)}")
""")

code(r"""
first = conventions["-inf"][0]
for p in conventions.values():  # a partly masked row: all agree
    np.testing.assert_allclose(p[0].astype(float), first, rtol=2e-3)
assert np.all(np.isnan(conventions["-inf"][1]))
np.testing.assert_allclose(conventions["-1e9"][1], 1 / 3)
assert np.all(np.isnan(conventions["-1e6, float16"][1].astype(float)))
q1, k1, v1 = np.eye(2, 3), np.eye(3), np.arange(9.0).reshape(3, 3)
assert np.all(attention(q1, k1, v1, mask=allowed)[1] == 0)
print("book's convention: the masked row's output is", attention(
    q1, k1, v1, mask=allowed)[1])
""")

md(r"""
The book picks the third convention, that of the current frameworks' fused kernels: **a query
with no allowed key returns zeros**, its log-sum-exp is $-\infty$ (the logarithm of an empty
sum), and it contributes nothing to any gradient. It is the only one of the three that is
both honest and harmless. NaN is honest but contagious: it spreads through the next layer,
the loss and every gradient of the batch. The uniform row is harmless-looking and wrong: the
output is an average of padding, and the gradient teaches the model something about padding.
Zeros say "nothing was attended to" in the one way that a sum can. Exercise {ref}`ex-11-3`
shows what the backward pass has to do to keep that promise.
""")

# --------------------------------------------------------------------------- backward
md(r"""
## The backward pass

Training needs the gradients of a loss with respect to $\mathbf Q$, $\mathbf K$ and
$\mathbf V$, given $d\mathbf O = \partial C/\partial\mathbf O$ (the notation $d\mathbf X$
means $\partial C/\partial \mathbf X$, a matrix of the shape of $\mathbf X$). Go backwards
through the three steps.

* $\mathbf O = \mathbf P\mathbf V$ is a matrix product, so
  $d\mathbf V = \mathbf P^\top d\mathbf O$ and $d\mathbf P = d\mathbf O\,\mathbf V^\top$.
* Row $i$ of $\mathbf P$ is the softmax of row $i$ of $\mathbf S$, with the symmetric Jacobian
  $\mathbf J_i = \operatorname{diag}(\mathbf p_i) - \mathbf p_i\mathbf p_i^\top$ of chapter 3,
  so $d\mathbf s_i = \mathbf J_i\,d\mathbf p_i = \mathbf p_i \odot d\mathbf p_i -
  \mathbf p_i\,(\mathbf p_i^\top d\mathbf p_i)$: the vector-Jacobian product in $O(M)$.
  In matrix form $d\mathbf S = \mathbf P \odot (d\mathbf P - D\,\mathbf 1^\top)$ with one
  number per query, $D_i = \sum_j P_{ij}\,dP_{ij}$.
* $\mathbf S = c\,\mathbf Q\mathbf K^\top$ with $c = 1/\sqrt d$, so
  $d\mathbf Q = c\,d\mathbf S\,\mathbf K$ and $d\mathbf K = c\,d\mathbf S^\top\mathbf Q$.

The number $D_i$ has a second form that matters for memory. Since $dP_{ij} = d\mathbf o_i
\cdot \mathbf v_j$,

$$
D_i = \sum_j P_{ij}\,(d\mathbf o_i\cdot\mathbf v_j) = d\mathbf o_i \cdot \sum_j P_{ij}\mathbf v_j
= d\mathbf o_i \cdot \mathbf o_i ,
$$

a row sum of $d\mathbf O \odot \mathbf O$, computable from the output without $\mathbf P$.
SymPy checks both results symbolically for $N = 2$ queries, $M = 3$ keys and $e = 2$: it
differentiates the scalar $C = \sum_{i,l} dO_{il}\,O_{il}$ (whose gradient with respect to
$\mathbf O$ is $d\mathbf O$, so its gradients are exactly the backward pass) with respect to
every score.
""")

code(r"""
Ns, Ms, es = 2, 3, 2
S_sym = sp.Matrix(Ns, Ms, lambda i, j: sp.Symbol(f"s_{i + 1}{j + 1}"))
V_sym = sp.Matrix(Ms, es, lambda j, l: sp.Symbol(f"v_{j + 1}{l + 1}"))
dO_sym = sp.Matrix(Ns, es, lambda i, l: sp.Symbol(f"g_{i + 1}{l + 1}"))
expS = S_sym.applyfunc(sp.exp)
P_sym = sp.Matrix(Ns, Ms, lambda i, j: expS[i, j] / sum(expS.row(i)))
O_sym = P_sym * V_sym
C_sym = sum(dO_sym[i, l] * O_sym[i, l] for i in range(Ns) for l in range(es))
dS_auto = sp.Matrix(Ns, Ms, lambda i, j: sp.diff(C_sym, S_sym[i, j]))
dP_sym = dO_sym * V_sym.T
D_sym = [sum(dO_sym[i, l] * O_sym[i, l] for l in range(es)) for i in range(Ns)]
dS_claim = sp.Matrix(
    Ns, Ms, lambda i, j: P_sym[i, j] * (dP_sym[i, j] - D_sym[i])
)
assert sp.simplify(dS_auto - dS_claim) == sp.zeros(Ns, Ms)
D_other = [
    sum(P_sym[i, j] * dP_sym[i, j] for j in range(Ms)) for i in range(Ns)
]
assert all(sp.simplify(a - b) == 0 for a, b in zip(D_sym, D_other))
for i in range(Ns):  # and row by row it is chapter 3's J_i dp_i
    p_i = P_sym.row(i).T
    J_i = sp.diag(*p_i) - p_i * p_i.T
    assert sp.simplify(J_i * dP_sym.row(i).T - dS_claim.row(i).T) == sp.zeros(
        Ms, 1
    )
print("dS = P * (dP - D), row i = J_i dp_i;")
print("D_i = rowsum(dO * O) = sum_j P_ij dP_ij")
""")

md(r"""
The last step, through $\mathbf S = c\,\mathbf Q\mathbf K^\top$, is checked the same way on
symbolic $\mathbf Q$ and $\mathbf K$ ($N = 2$, $M = 3$, $d = 2$) for an arbitrary upstream
gradient $d\mathbf S$:
""")

code(r"""
ds_ = 2
Q_sym = sp.Matrix(Ns, ds_, lambda i, l: sp.Symbol(f"q_{i + 1}{l + 1}"))
K_sym = sp.Matrix(Ms, ds_, lambda j, l: sp.Symbol(f"k_{j + 1}{l + 1}"))
G_sym = sp.Matrix(Ns, Ms, lambda i, j: sp.Symbol(f"h_{i + 1}{j + 1}"))
c_sym = 1 / sp.sqrt(ds_)
S_qk = c_sym * Q_sym * K_sym.T
C_qk = sum(G_sym[i, j] * S_qk[i, j] for i in range(Ns) for j in range(Ms))
dQ_auto = sp.Matrix(Ns, ds_, lambda i, l: sp.diff(C_qk, Q_sym[i, l]))
dK_auto = sp.Matrix(Ms, ds_, lambda j, l: sp.diff(C_qk, K_sym[j, l]))
assert sp.simplify(dQ_auto - c_sym * G_sym * K_sym) == sp.zeros(Ns, ds_)
assert sp.simplify(dK_auto - c_sym * G_sym.T * Q_sym) == sp.zeros(Ms, ds_)
print("dQ = c dS K and dK = c dS^T Q")
""")

md(r"""
Numerically, the package's `flash_attention_backward` (which implements these formulas tile
by tile, next section) is compared with central finite differences of the dense `attention`,
entry by entry, for a causal problem whose sizes are not multiples of the block:
""")

code(r"""
def central_diff(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        g[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return g


Nf, df, ef = 6, 3, 2
Qf, Kf, Vf = (rng.normal(size=(Nf, w)) for w in (df, df, ef))
dO = rng.normal(size=(Nf, ef))  # the loss is sum(dO * O)
Of, Lf = flash_attention(Qf, Kf, Vf, causal=True, block=4)
dQf, dKf, dVf = flash_attention_backward(
    Qf, Kf, Vf, Of, Lf, dO, causal=True, block=4
)
""")

code(r"""
def loss(q=Qf, k=Kf, v=Vf):
    return np.sum(dO * attention(q, k, v, causal=True))


fd = [
    central_diff(lambda x: loss(q=x), Qf),
    central_diff(lambda x: loss(k=x), Kf),
    central_diff(lambda x: loss(v=x), Vf),
]
for name, got, want in zip("QKV", (dQf, dKf, dVf), fd):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
worst = max(np.max(np.abs(g - w)) for g, w in zip((dQf, dKf, dVf), fd))
print(f"dQ, dK, dV agree with finite differences (largest gap {worst:.1e})")
""")

# --------------------------------------------------------------------------- tiled
md(r"""
## Attention tile by tile

The dense computation stores $\mathbf S$ and $\mathbf P$, $N \times M$ numbers each, per
head, and reads and writes them in main memory; for long sequences that dominates both the
memory and the time. But each row of $\mathbf O$ is a softmax-weighted sum, and chapter 10
showed how to compute a softmax in pieces: keep the running maximum $m$ and the running
normaliser $\ell = \sum_j e^{s_j - m}$ (chapter 10's $d$; here $d$ is the width of a head),
and when a new block of scores raises the maximum,
rescale what has been accumulated by $e^{m_{\text{old}} - m_{\text{new}}}$. Add an accumulator
for $\sum_j e^{s_j - m}\mathbf v_j$, rescaled the same way, and a whole row of attention is
computed from one block of keys and values at a time {cite}`milakov2018,dao2022`.

There are two ways to hold the accumulator. FlashAttention {cite}`dao2022` keeps it
*normalised*: after every block the partial output is divided by the current $\ell$, so it is
always a valid average of the values seen so far,

$$
\mathbf o \leftarrow \frac{\ell\,e^{m - m_{\text{new}}}\,\mathbf o
+ \sum_{j \in \text{block}} e^{s_j - m_{\text{new}}}\mathbf v_j}{\ell_{\text{new}}},
\qquad \ell_{\text{new}} = \ell\,e^{m - m_{\text{new}}} + \sum_{j \in \text{block}} e^{s_j - m_{\text{new}}} .
$$

FlashAttention-2 {cite}`dao2023` keeps it *unnormalised*,
$\tilde{\mathbf o} \leftarrow e^{m - m_{\text{new}}}\tilde{\mathbf o} + \sum_{j} e^{s_j -
m_{\text{new}}}\mathbf v_j$, and divides by $\ell$ once, at the end: fewer non-matrix-multiply
operations per block, which on a GPU are the expensive ones. It also puts the loop over query
blocks outside, so that different query blocks run in parallel. Both write only
$\mathbf O$ and, per query, $L_i = m_i + \log \ell_i$, the log-sum-exp of the row: one
number that the backward pass needs. The cell writes the FlashAttention form for one head and
compares it with the package's `flash_attention` (the FlashAttention-2 form) and with the dense
reference, on ordinary scores and on scores in the thousands, which would overflow an
unshifted exponential even in float64:
""")

code(r"""
def flash1_forward(Q, K, V, block):
    # FlashAttention's form: o kept normalised after every key block
    c = 1 / np.sqrt(Q.shape[1])
    out = np.zeros((Q.shape[0], V.shape[1]))
    m = np.full(Q.shape[0], -np.inf)
    ell = np.zeros(Q.shape[0])
    for j0 in range(0, K.shape[0], block):
        s = c * Q @ K[j0 : j0 + block].T
        m_new = np.maximum(m, s.max(axis=1))
        w = np.exp(s - m_new[:, None])
        ell_new = ell * np.exp(m - m_new) + w.sum(axis=1)
        kept = (ell * np.exp(m - m_new))[:, None] * out
        out = (kept + w @ V[j0 : j0 + block]) / ell_new[:, None]
        m, ell = m_new, ell_new
    return out, m + np.log(ell)
""")

code(r"""
Nt, dt = 200, 16
Qt, Kt, Vt = (rng.normal(0, 3, size=(Nt, dt)) for _ in range(3))
eps = np.finfo(float).eps
scale_v = np.abs(Vt).max()
gaps = {}
for factor in (1, 100):  # 100: scores in the thousands
    Qx = factor * Qt
    dense = attention(Qx, Kt, Vt)
    o1, L1 = flash1_forward(Qx, Kt, Vt, block=64)
    o2, L2 = flash_attention(Qx, Kt, Vt, block=64)
    L_ref = scipy_logsumexp(Qx @ Kt.T / np.sqrt(dt), axis=1)
    for o, L in ((o1, L1), (o2, L2)):
        np.testing.assert_allclose(o, dense, rtol=0, atol=64 * eps * scale_v)
        np.testing.assert_allclose(L, L_ref, rtol=1e-14)
    g1, g2 = (np.abs(o - dense).max() / (eps * scale_v) for o in (o1, o2))
    gaps[factor] = (g1, g2)
    print(f"largest score {np.max(Qx @ Kt.T) / np.sqrt(dt):>5.0f}: tiled vs "
          f"dense {g1:.1f} and {g2:.1f} eps of max|v|")
glue("flash_gap", float(max(max(g) for g in gaps.values())))
""")

md(r"""
Both tiled forms agree with the dense result to within {glue:text}`flash_gap:.1f` units of
float64 eps (relative to the largest value), and their $L$ with SciPy's `logsumexp` of the
full score matrix.

**The backward pass recomputes $\mathbf P$.** Storing $\mathbf P$ for the backward pass would
undo the savings, so FlashAttention recomputes each tile from $\mathbf Q$, $\mathbf K$ and the
stored $L$: $P_{ij} = e^{S_{ij} - L_i}$ is exact, no maximum or normaliser needed, because
$L_i$ already is the row's log-normaliser. With $D_i = \langle d\mathbf o_i, \mathbf o_i
\rangle$ computed once from the output, every formula of the previous section becomes local
to a tile: $d\mathbf V_j \mathrel{+}= \mathbf P_{ij}^\top d\mathbf O_i$,
$d\mathbf P_{ij} = d\mathbf O_i \mathbf V_j^\top$, $d\mathbf S_{ij} = \mathbf P_{ij} \odot
(d\mathbf P_{ij} - D_i)$, $d\mathbf Q_i \mathrel{+}= c\,d\mathbf S_{ij}\mathbf K_j$,
$d\mathbf K_j \mathrel{+}= c\,d\mathbf S_{ij}^\top\mathbf Q_i$. `flash_attention_backward`
loops over key blocks outside (each block of $d\mathbf K$, $d\mathbf V$ is finished in fast
memory) and query blocks inside. Against the dense gradients, computed here through the
per-row Jacobians of chapter 3 on a causal problem of 200 queries:
""")

code(r"""
def dense_grads(Q, K, V, dO, causal):
    # the backward pass of the previous section, with P formed whole
    c = 1 / np.sqrt(Q.shape[1])
    S = c * Q @ K.T
    if causal:
        S = np.where(np.tri(len(Q), len(K), dtype=bool), S, -np.inf)
    P = softmax(S, axis=1)
    dP = dO @ V.T
    dS = np.einsum("nij,nj->ni", softmax_jacobian(S), dP)  # J symmetric
    return c * dS @ K, c * dS.T @ Q, P.T @ dO
""")

code(r"""
dOt = rng.normal(size=Vt.shape)
Oc, Lc = flash_attention(Qt, Kt, Vt, causal=True, block=64)
tiled_g = flash_attention_backward(
    Qt, Kt, Vt, Oc, Lc, dOt, causal=True, block=64
)
for got, want in zip(tiled_g, dense_grads(Qt, Kt, Vt, dOt, causal=True)):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
print(f"tiled backward = dense backward (dQ, dK, dV), causal, N = {Nt}")
""")

md(r"""
With a causal mask, the tiles above the diagonal are never computed: every query in them would
see only masked keys. The tiles on the diagonal are computed with the mask applied inside, and
those below it are computed whole. The figure draws the schedule of the forward pass for
$N = M = 1024$ and blocks of $B = 128$; the cell counts the tiles and checks the counts against the
closed form, $T(T+1)/2$ of $T^2$ tiles for $T$ blocks per side.
""")

code(r"""
Nc, Bc = 1024, 128
T = Nc // Bc
kind = np.zeros((T, T), dtype=int)  # 0 skipped, 1 masked inside, 2 whole
for i in range(T):
    for j in range(T):
        first_key, last_key = j * Bc, (j + 1) * Bc - 1
        first_q, last_q = i * Bc, (i + 1) * Bc - 1
        if first_key > last_q:
            kind[i, j] = 0
        elif last_key > first_q:
            kind[i, j] = 1
        else:
            kind[i, j] = 2
computed = np.count_nonzero(kind)
assert computed == T * (T + 1) // 2 and np.count_nonzero(kind == 1) == T
glue("tiles_computed", int(computed))
glue("tiles_total", int(T * T))
glue("tiles_share", float(100 * computed / T**2))
""")

code(r"""
from matplotlib.colors import ListedColormap

fig_, ax = plt.subplots(figsize=(5.2, 4.6))
cmap = ListedColormap(["#FFFFFF", "#E69F00", "#0072B2"])
ax.imshow(kind, cmap=cmap, vmin=0, vmax=2)
for i in range(T):  # each query block stops at the diagonal
    ax.annotate("", xy=(i + 0.35, i), xytext=(-0.4, i),
                arrowprops=dict(arrowstyle="->", color="black", lw=1))
ax.set_xticks(np.arange(T) - 0.5, minor=True)
ax.set_yticks(np.arange(T) - 0.5, minor=True)
ax.grid(which="minor", color="black", lw=0.6)
ax.grid(which="major", visible=False)
ax.tick_params(which="minor", length=0)
ax.set_xticks(range(T), [f"{j}" for j in range(T)])
ax.set_yticks(range(T), [f"{i}" for i in range(T)])
ax.set_xlabel("key block $j$")
ax.set_ylabel("query block $i$")
plt.show()
""", mystnb={"figure": {"name": "fig-causal-tiles", "caption": (
    "The tiles of a causal forward pass for $N = M = 1024$ in blocks of $B = 128$. Each query block "
    "(row) streams through the key blocks from left to right, up to the diagonal (arrows). Blue tiles are "
    "computed whole, orange ones on the diagonal with the mask applied inside, white ones are "
    "skipped: {glue:text}`tiles_computed` of {glue:text}`tiles_total` tiles, "
    "{glue:text}`tiles_share:.0f`%, are computed.")}})

md(r"""
**What the tiling saves.** In memory: $\mathbf P$ for one head at $N = 4096$ in float16 takes
{glue:text}`p_mib:.0f` MiB, the vector $L$ in float32 {glue:text}`l_kib:.0f` KiB. In traffic:
{cite}`dao2022` (Theorem 2) count the reads and writes of main memory ("HBM") with a fast
memory of $F$ entries, $d \le F \le Nd$ (their $M$): standard attention needs
$\Theta(Nd + N^2)$ of them, FlashAttention $\Theta(N^2 d^2 / F)$, and they prove that no exact
algorithm can do asymptotically better for all $F$ in that range. The ratio of the quadratic
terms is $d^2/F$; exercise {ref}`ex-10-4` of chapter 10 derives the count. For $d = 64$ and a
fast memory of 100 KB of float16 numbers, that ratio is {glue:text}`io_ratio:.2f`.

In arithmetic the tiled backward does *more*. Count multiply–adds of the matrix products
(two floating-point operations each) for $N = M$: the forward pass has two products of $N^2d$,
$4N^2d$ operations. A backward pass that has $\mathbf P$ stored does four ($d\mathbf V$,
$d\mathbf P$, $d\mathbf Q$, $d\mathbf K$), $8N^2d$; the tiled one also recomputes
$\mathbf S = c\,\mathbf Q\mathbf K^\top$, $10N^2d$, a quarter more. It is faster all the same,
because it never writes or reads $N^2$ numbers in main memory, and on a GPU memory traffic,
not arithmetic, is what attention waits for {cite}`dao2022`.
""")

code(r"""
N_mem = 4096
p_bytes = N_mem * N_mem * np.dtype(np.float16).itemsize
l_bytes = N_mem * np.dtype(np.float32).itemsize
F_entries = 100 * 1024 / 2  # 100 KB of float16
io_ratio = 64**2 / F_entries
Nsym, dsym = sp.symbols("N d", positive=True)
forward_flops = 2 * (2 * Nsym**2 * dsym)
stored_bwd, tiled_bwd = 4 * (2 * Nsym**2 * dsym), 5 * (2 * Nsym**2 * dsym)
assert sp.simplify(tiled_bwd / stored_bwd - sp.Rational(5, 4)) == 0
glue("p_mib", p_bytes / 2**20)
glue("l_kib", l_bytes / 2**10)
glue("io_ratio", io_ratio)
print(f"P: {p_bytes / 2**20:.0f} MiB, L: {l_bytes / 2**10:.0f} KiB; "
      f"d^2/F = {io_ratio:.3f}; tiled/stored backward FLOPs = "
      f"{tiled_bwd / stored_bwd}")
""")

md(r"""
The NumPy versions in the package are for reading and testing, not for speed: NumPy has no
fast memory to manage, and every tile is a separate call. Their value is that each line
corresponds to a line of the GPU algorithm, and that they are checked against the dense
reference (the package's tests cover huge logits, a dominant key in the last block, ties,
tiny and cancelling values, batches with shared keys, and float16 and float32 inputs).
""")

# --------------------------------------------------------------------------- sinks
md(r"""
## Softmax cannot say "nothing"

Every row of $\mathbf P$ sums to one, so the output of a query is always a full average of
values, even when no key is relevant. A head that has nothing to contribute for some token
must still put its weight somewhere. Trained language models find a place themselves: many
heads put large weights on the first token of the sequence, whatever that token is, as if it
were somewhere to park attention that is not needed. {cite}`xiao2024` called these
*attention sinks* and found that a model evaluated on a sliding window of recent tokens
breaks down as soon as the first tokens leave the window; keeping them restores it.

A direct fix is to let the weights sum to less than one. Adding a key whose score is always 0
and whose value is the zero vector gives *softmax$_1$* {cite}`miller2023`,

$$
\operatorname{softmax}_1(\mathbf s)_j = \frac{e^{s_j}}{1 + \sum_{l} e^{s_l}},
\qquad \sum_j \operatorname{softmax}_1(\mathbf s)_j
= \frac{e^{\operatorname{LSE}(\mathbf s)}}{1 + e^{\operatorname{LSE}(\mathbf s)}}
= \sigma\bigl(\operatorname{LSE}(\mathbf s)\bigr),
$$

so the total weight is a sigmoid of the row's log-sum-exp: near one when some score is large,
near zero when all are very negative. SymPy checks the identity for $M = 3$, and NumPy checks
that softmax$_1$ is the softmax with an extra zero score, with the extra weight dropped:
""")

code(r"""
s1, s2, s3 = sp.symbols("s1:4", real=True)
sv = [s1, s2, s3]
total = sum(sp.exp(x) for x in sv) / (1 + sum(sp.exp(x) for x in sv))
lse_sym = sp.log(sum(sp.exp(x) for x in sv))
assert sp.simplify(total - 1 / (1 + sp.exp(-lse_sym))) == 0


def softmax1(s):
    # softmax with one extra score 0 (a sink whose value is zero)
    padded = np.concatenate([s, np.zeros(s.shape[:-1] + (1,))], axis=-1)
    return softmax(padded, axis=-1)[..., :-1]
""")

code(r"""
s_rows = np.array([[4.0, 1.0, 0.0], [-6.0, -7.0, -5.0], [0.0, 0.0, 0.0]])
w1 = softmax1(s_rows)
sig = 1 / (1 + np.exp(-scipy_logsumexp(s_rows, axis=1)))
np.testing.assert_allclose(w1.sum(axis=1), sig, rtol=1e-14)
np.testing.assert_allclose(
    w1, np.exp(s_rows) / (1 + np.exp(s_rows).sum(1, keepdims=True)), rtol=1e-14
)
v_demo = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
for s, w in zip(s_rows, w1):
    plain = softmax(s) @ v_demo
    print(f"scores {s}: softmax output {np.round(plain, 3)},\n"
          f"  softmax_1 output {np.round(w @ v_demo, 3)}, "
          f"weight {w.sum():.3f}")
glue("w1_low", float(w1[1].sum()))
""")

md(r"""
For the second row, whose scores are all low, plain softmax still returns a full average of
the values; softmax$_1$ gives the row a total weight of {glue:text}`w1_low:.4f`, an output
near zero. A learned sink does the same thing with a real token: its score plays the part of
the constant 0.

**Dispersion.** A related limit concerns long inputs. Suppose the scores of a row lie in a
window of width $\Delta$: $\max_j s_j - \min_j s_j \le \Delta$. Then the largest weight is at
most

$$
\max_j P_j = \frac{e^{s_{\max}}}{\sum_l e^{s_l}} \le
\frac{e^{s_{\max}}}{e^{s_{\max}} + (M - 1)\,e^{s_{\max} - \Delta}}
= \frac{1}{1 + (M - 1)\,e^{-\Delta}},
$$

because each of the other $M - 1$ terms is at least $e^{s_{\max} - \Delta}$, with equality
when one score sits at the top of the window and all others at the bottom. For fixed
$\Delta$ the bound tends to zero as $M$ grows: if the scores are bounded (as they are for
bounded queries and keys), attention over long enough inputs must spread out, and no
head can keep a sharp focus on one key. {cite}`velickovic2024` make this argument, and
its consequences for reasoning on inputs longer than the training ones, precise. The cell
checks the bound on random rows, confirms that it is attained, and plots it.
""")

code(r"""
def dispersion_bound(M, delta):
    return 1 / (1 + (M - 1) * np.exp(-delta))


# the extreme row (Delta, 0, ..., 0) attains the bound, for any M and Delta
Mb, Db = sp.symbols("M Delta", positive=True)
top_weight = sp.exp(Db) / (sp.exp(Db) + (Mb - 1))
assert sp.simplify(top_weight - 1 / (1 + (Mb - 1) * sp.exp(-Db))) == 0


for M_, delta in [(10, 2.0), (1000, 5.0), (100_000, 10.0)]:
    s = rng.uniform(0, delta, size=(200, M_))
    s[:, 0], s[:, 1] = 0.0, delta  # the window is used in full
    top = softmax(s, axis=1).max(axis=1)
    assert np.all(top <= dispersion_bound(M_, delta))
    worst = np.zeros(M_)
    worst[0] = delta  # one at the top, all others at the bottom
    np.testing.assert_allclose(
        softmax(worst).max(), dispersion_bound(M_, delta), rtol=1e-12
    )
print("bound holds on random rows and is attained by the extreme row")
""")

code(r"""
Ms_plot = np.logspace(0.3, 6, 200)
fig_, ax = plt.subplots(figsize=(6.4, 3.8))
for delta, ls in ((2, "-"), (5, "--"), (10, "-.")):
    ax.semilogx(
        Ms_plot,
        dispersion_bound(Ms_plot, delta),
        ls,
        label=rf"$\Delta = {delta}$",
    )
ax.set_xlabel("keys $M$")
ax.set_ylabel("largest possible weight")
ax.set_ylim(0, 1.02)
ax.legend()
plt.show()
glue("bound_10_1e6", float(dispersion_bound(1e6, 10)))
""", mystnb={"figure": {"name": "fig-dispersion", "caption": (
    "The largest weight a softmax can give one key when all $M$ scores lie in a window of "
    "width $\\Delta$. For fixed $\\Delta$ it falls to zero as the input grows: with "
    "$\\Delta = 10$ and a million keys it is {glue:text}`bound_10_1e6:.3f`.")}})

md(r"""
The same calculation says how sharp the scores must be to keep a focus: exercise
{ref}`ex-11-1` asks for the window width that a given weight needs. The last figure returns
to the start of the chapter and shows what the lack of scaling does to a whole attention map.
""")

code(r"""
d_map, N_map = 64, 24
Qm, Km = rng.normal(size=(2, N_map, d_map))
raw_map = Qm @ Km.T
maps = {
    r"unscaled $\mathbf{Q}\mathbf{K}^\top$": softmax(raw_map, axis=1),
    r"scaled $\mathbf{Q}\mathbf{K}^\top/\sqrt{d}$": softmax(
        raw_map / np.sqrt(d_map), axis=1
    ),
}
fig_, axes = plt.subplots(1, 2, figsize=(8, 4.3), sharey=True)
for ax, (title, Pm) in zip(axes, maps.items()):
    im = ax.imshow(Pm, cmap="viridis", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xlabel("key $j$")
    ax.grid(False)
axes[0].set_ylabel("query $i$")
fig_.colorbar(im, ax=axes, shrink=0.8, label="weight $P_{ij}$")
plt.show()
glue("map_max_raw", float(np.median(maps[next(iter(maps))].max(axis=1))))
""", mystnb={"figure": {"name": "fig-attention-maps", "caption": (
    "Attention weights of 24 random queries over 24 random keys at $d = 64$. Left, without "
    "the scaling: nearly every row is one bright key (median largest weight "
    "{glue:text}`map_max_raw:.2f`), a near-one-hot softmax with a vanishing Jacobian. "
    "Right, with it: weights spread over many keys.")}})

# --------------------------------------------------------------------------- summary
md(r"""
## Summary

* Attention is one softmax per query over the scores $\mathbf q_i\cdot\mathbf k_j/\sqrt d$,
  followed by a weighted average of the values; it is equivariant in the queries and
  invariant in the key–value pairs.
* For unit-variance entries $\operatorname{Var}(\mathbf q\cdot\mathbf k) = d$: without the
  $1/\sqrt d$ the width of a head acts as a temperature, and at $d = 512$
  {glue:text}`dead_r512:.0f`% of random rows had a vanished Jacobian. The scaling is not
  overflow protection, and it controls the scale only at initialisation.
* A query with no allowed key: $-\infty$ gives NaN, a large finite negative gives a silent
  average of padding (and NaN again in float16); the book returns zeros with $L = -\infty$
  and no gradient.
* Backward: $d\mathbf V = \mathbf P^\top d\mathbf O$, $d\mathbf P = d\mathbf O\mathbf V^\top$,
  $d\mathbf S = \mathbf P\odot(d\mathbf P - D)$ with $D_i = \langle d\mathbf o_i,
  \mathbf o_i\rangle$, $d\mathbf Q = c\,d\mathbf S\mathbf K$, $d\mathbf K = c\,d\mathbf S^\top
  \mathbf Q$, derived in SymPy and checked against finite differences.
* Tiled attention applies chapter 10's online normaliser to a weighted sum: it stores only
  $\mathbf O$ and $L$, recomputes $\mathbf P$ in the backward pass from $L$, does a quarter
  more arithmetic there and far less memory traffic.
* Softmax weights always sum to one: models learn sinks, softmax$_1$ adds a zero score, and
  for scores in a window of width $\Delta$ the largest weight is at most
  $1/(1 + (M-1)e^{-\Delta})$, which vanishes as the input grows.

## Exercises
""")

# --------------------------------------------------------------------------- exercises
md(r"""
```{exercise} How sharp must the scores be?
:label: ex-11-1
A head must give one key at least the weight $w$ ($0 < w < 1$) among $M$ keys whose scores
lie in a window of width $\Delta$. Using the dispersion bound, derive the smallest $\Delta$
that makes this possible, as a function of $M$ and $w$. Evaluate it for $w = \tfrac12$ and
$w = 0.9$ at $M = 10^3$ and $M = 10^5$, check one case with a row of scores that attains it,
and say how the required width grows with $M$. What does that imply for the norms of
queries and keys in a model meant for inputs a hundred times longer than its training ones?
```

```{solution-start} ex-11-1
:class: dropdown
```
The bound $1/(1 + (M-1)e^{-\Delta}) \ge w$ is equivalent to $(M-1)e^{-\Delta} \le (1-w)/w$,
that is

$$
\Delta \ge \log(M - 1) + \log\frac{w}{1 - w},
$$

and the row with one score at the top of the window and the others at the bottom attains the
bound, so this $\Delta$ is also sufficient. The required width grows like $\log M$: a
hundredfold longer input needs $\log 100 \approx 4.6$ more units of score range, whatever $w$.
Since the scores are $\mathbf q\cdot\mathbf k/\sqrt d \le \lVert\mathbf q\rVert
\lVert\mathbf k\rVert/\sqrt d$, the product of the norms must grow in proportion; a model whose
norms were fitted to short inputs cannot stay sharp on much longer ones unless its scores are
rescaled with the length (multiplying them by $\log M$ is the remedy proposed by
{cite}`chiang2022`). SymPy solves the inequality and NumPy checks the attaining row:
""")

code(r"""
M_s, w_s, Delta_s = sp.symbols("M w Delta", positive=True)
sol = sp.solve(sp.Eq(1 / (1 + (M_s - 1) * sp.exp(-Delta_s)), w_s), Delta_s)
claim = sp.log(M_s - 1) + sp.log(w_s / (1 - w_s))
assert len(sol) == 1  # exp is one-to-one, so equal exponentials suffice
assert sp.simplify(sp.exp(sol[0]) - sp.exp(claim)) == 0
for M_, w_ in [(10**3, 0.5), (10**3, 0.9), (10**5, 0.5), (10**5, 0.9)]:
    need = float(claim.subs({M_s: M_, w_s: w_}))
    row = np.zeros(M_)
    row[0] = need
    np.testing.assert_allclose(softmax(row)[0], w_, rtol=1e-12)
    print(f"M = {M_:>6}, w = {w_}: Delta >= {need:.2f}")
""", nbgrader_computation="ex-11-1")

md(r"""
```{solution-end}
```
""")

md(r"""
```{exercise} The backward pass of attention
:label: ex-11-2
Write `attention_backward(q, k, v, d_out)` for one head without a mask: given `q` ($N\times
d$), `k` ($M\times d$), `v` ($M\times e$) and the gradient `d_out` ($N \times e$) of a loss
with respect to the output $\operatorname{softmax}(\mathbf Q\mathbf K^\top/\sqrt d)\,\mathbf
V$, return `(dq, dk, dv)`. Form $\mathbf P$ whole (with a stable softmax; the package's
`softmax` is allowed), and use $D_i = \langle d\mathbf o_i, \mathbf o_i\rangle$. The tests
compare with finite differences; the package's `flash_attention_backward` is not allowed.
```

```{solution-start} ex-11-2
:class: dropdown
```
Follow the three steps of the section on the backward pass.
""")

code(r"""
def attention_backward(q, k, v, d_out):
    ### BEGIN SOLUTION
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    d_out = np.asarray(d_out, dtype=float)
    c = 1 / np.sqrt(q.shape[1])
    p = softmax(c * q @ k.T, axis=1)
    out = p @ v
    dv = p.T @ d_out
    dp = d_out @ v.T
    delta = np.sum(d_out * out, axis=1, keepdims=True)
    ds = p * (dp - delta)
    return c * ds @ k, c * ds.T @ q, dv
    ### END SOLUTION
""", nbgrader={"grade": False, "grade_id": "ex-11-2-code", "locked": False,
               "schema_version": 3, "solution": True, "task": False})

md(r"""
```{solution-end}
```
""")

code(r"""
# Tests for exercise ex-11-2
import importlib

import softmaxbook.grading

importlib.reload(softmaxbook.grading)  # redefined checks do not survive
from softmaxbook.grading import check, check_close, forbidden, original

rng_tests = np.random.default_rng(1110)  # the tests' own numbers
reference = original("attention")  # not whatever `attention` is bound to now


def numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        g[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return g


q_t, k_t, v_t = (rng_tests.normal(size=(4, 3)) for _ in range(3))
g_t = rng_tests.normal(size=(4, 3))
with forbidden(globals(), "flash_attention_backward", exercise="ex-11-2"):
    got = attention_backward(q_t, k_t, v_t, g_t)
check(
    isinstance(got, tuple) and len(got) == 3,
    "return a tuple (dq, dk, dv)",
)
for name, x, grad in zip(("dq", "dk", "dv"), (q_t, k_t, v_t), got):
    args = {"q": q_t, "k": k_t, "v": v_t}
    key = name[1]

    def loss(y, key=key):
        return np.sum(g_t * reference(**{**args, key: y}))

    check_close(
        grad, numeric_grad(loss, x), f"{name} differs from finite differences",
        rtol=1e-6, atol=1e-8,
    )
print("attention_backward passes")
""", nbgrader={"grade": True, "grade_id": "ex-11-2-tests", "locked": True, "points": 3,
               "schema_version": 3, "solution": False, "task": False})

code(r"""
# Hidden tests for exercise ex-11-2: they run when the assignment is graded
import importlib

import softmaxbook.grading

importlib.reload(softmaxbook.grading)  # redefined checks do not survive
from softmaxbook.grading import check, check_close, forbidden, original

rng_tests = np.random.default_rng(1111)  # the tests' own numbers
reference = original("attention")  # not whatever `attention` is bound to now
### BEGIN HIDDEN TESTS
# large scores: they need a stable softmax
q_h = rng_tests.normal(0, 30, size=(5, 4))
k_h = rng_tests.normal(0, 30, size=(7, 4))
v_h, g_h = rng_tests.normal(size=(7, 2)), rng_tests.normal(size=(5, 2))
with forbidden(globals(), "flash_attention_backward", exercise="ex-11-2"):
    dq_h, dk_h, dv_h = attention_backward(q_h, k_h, v_h, g_h)
out_h, lse_h = original("flash_attention")(q_h, k_h, v_h)
want = original("flash_attention_backward")(q_h, k_h, v_h, out_h, lse_h, g_h)
for name, got_h, want_h in zip(("dq", "dk", "dv"), (dq_h, dk_h, dv_h), want):
    check(
        np.shape(got_h) == want_h.shape,
        f"hidden test: {name} has shape {np.shape(got_h)}, not {want_h.shape} "
        "(N and M differ here)",
    )
    check_close(
        got_h, want_h, f"hidden test: {name} wrong for large scores, N != M",
        rtol=1e-8, atol=1e-10,
    )
print("ex-11-2: hidden tests pass")
### END HIDDEN TESTS
""", nbgrader={"grade": True, "grade_id": "ex-11-2-hidden-tests", "locked": True,
               "points": 1, "schema_version": 3, "solution": False, "task": False})

md(r"""
```{exercise} What the backward pass needs from a fully masked row
:label: ex-11-3
The backward pass recomputes probabilities as $P_{ij} = e^{S_{ij} - L_i}$. For a query with no
allowed key, this chapter's forward pass returns $L_i = -\infty$, the logarithm of an empty
sum. What does the recomputation give for that row, for an allowed and for a masked score
($S_{ij} = -\infty$), if nothing else is done? What value could a kernel store in $L_i$
instead so that the same formula, with no branch, returns the zero row the convention
promises, and why does the book's package keep $-\infty$ and test for it? (Hint: think of
$L$ also as what two partial results merge with, as in chapter 10.)
```

```{solution} ex-11-3
:class: dropdown
With $L_i = -\infty$, an allowed (finite) score gives $e^{S_{ij} + \infty} = \infty$ and a
masked one $e^{-\infty + \infty} = e^{\text{NaN}}$, NaN: the row would poison $d\mathbf Q$,
$d\mathbf K$ and $d\mathbf V$. Storing $L_i = +\infty$ instead makes every recomputed
$P_{ij} = e^{S_{ij} - \infty} = 0$ (for masked scores too, since $-\infty - \infty = -\infty$),
so the row contributes nothing, without a test in the inner loop; the FlashAttention kernels
store $+\infty$ for such rows for this reason. But $+\infty$ is not the row's log-sum-exp,
and log-sum-exps are also merged: when a row is split over several kernels (the split-KV
decoding path, or chapter 10's merge), an empty part must be the identity of the merge,
$\operatorname{LSE}(L_a, -\infty) = L_a$, which $-\infty$ is and $+\infty$ is not (it would
absorb everything). The same kernels therefore write $-\infty$ on their split path. The
package returns the mathematically right $-\infty$, usable in merges, and its backward pass
sets the recomputed row to zero where $L_i = -\infty$, a test that its test suite exercises.
```
""")


def build(path):
    cells = []
    for n, (kind, text, meta) in enumerate(CELLS):
        cell = {"cell_type": kind, "id": f"a11-{n:03d}", "metadata": {}}
        if "nbgrader" in meta:
            cell["metadata"]["nbgrader"] = meta["nbgrader"]
        if "mystnb" in meta:
            cell["metadata"]["mystnb"] = meta["mystnb"]
        if "nbgrader_computation" in meta:
            cell["metadata"]["tags"] = ["hide-input"]
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        cell["source"] = text.splitlines(keepends=True)
        cells.append(cell)
    nb = {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"}},
        "nbformat": 4, "nbformat_minor": 5}
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "notebooks/11_attention.ipynb")
