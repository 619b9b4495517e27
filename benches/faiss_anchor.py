#!/usr/bin/env python3
# Usage: pip install faiss-cpu numpy && python3 benches/faiss_anchor.py 1000000
# Side-by-side anchor for `tp benchmark`: faiss IndexFlatIP and numpy on embedding-like
# vectors of the same shape (latent space 32 + shared offset + noise 0.5, normalized).
import sys, time, numpy as np, faiss
n, d, q = int(sys.argv[1]), 384, 100
rng = np.random.default_rng(42)
basis = rng.standard_normal((32, d), dtype=np.float32) / np.sqrt(d)
offset = rng.standard_normal(d, dtype=np.float32) * 1.5 / np.sqrt(d)
def make(m):
    z = rng.standard_normal((m, 32), dtype=np.float32)
    x = z @ basis + offset + 0.5 * np.sqrt(32) / np.sqrt(d) * rng.standard_normal((m, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
xb = np.concatenate([make(100_000) for _ in range(n // 100_000)]) if n >= 100_000 else make(n)
xq = make(q)
index = faiss.IndexFlatIP(d); index.add(xb)
def p50(f):
    ts = []
    for i in range(q):
        t = time.perf_counter(); f(xq[i:i+1]); ts.append((time.perf_counter() - t) * 1e3)
    ts.sort(); return ts[len(ts) // 2]
for _ in range(3): index.search(xq[:1], 10)
print(f"faiss {faiss.__version__} IndexFlatIP n={n} threads={faiss.omp_get_max_threads()} p50 {p50(lambda x: index.search(x, 10)):.2f} ms")
print(f"numpy argpartition n={n} p50 {p50(lambda x: np.argpartition(-(xb @ x[0]), 10)[:10]):.2f} ms")
