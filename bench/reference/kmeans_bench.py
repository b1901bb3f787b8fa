"""Reference timing for `protoclust bench --kmeans NxDxK`: scikit-learn's KMeans (and faiss when
installed) on the same kind of data: N points around K uniform centres in [-1, 1]^D with uniform
noise of half-width 0.5; k-means++ seeding, one restart, 20 Lloyd iterations."""
import argparse
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--shape", default="50000x256x1000")
a = p.parse_args()
n, d, k = (int(v) for v in a.shape.split("x"))
rng = np.random.default_rng(0)
centres = rng.uniform(-1, 1, (k, d)).astype(np.float32)
x = centres[rng.integers(0, k, n)] + rng.uniform(-0.5, 0.5, (n, d)).astype(np.float32)
print(f"reference k-means: {n} x {d}, K = {k}")
print("| what | total s | seeding s | Lloyd iterations | s / Lloyd iteration |")
print("|---|---|---|---|---|")
try:
    from sklearn.cluster import KMeans

    from sklearn.cluster import kmeans_plusplus

    t = time.time()
    km = KMeans(k, n_init=1, max_iter=20, tol=0.0, algorithm="lloyd", random_state=0).fit(x)
    s = time.time() - t
    t = time.time()
    kmeans_plusplus(x, k, random_state=0)
    seed = time.time() - t
    per = max(s - seed, 0.0) / km.n_iter_
    print(f"| k-means++ + Lloyd (scikit-learn) | {s:.2f} | {seed:.2f} | {km.n_iter_} | {per:.3f} |")
except ImportError:
    print("(scikit-learn not installed: pip install scikit-learn)")
try:
    import faiss

    t = time.time()
    km = faiss.Kmeans(d, k, niter=20, seed=0, max_points_per_centroid=10_000_000)
    km.train(x)
    s = time.time() - t
    it = max(len(km.obj), 1)  # faiss stops early once converged
    print(f"| random init + Lloyd (faiss, as DeepCluster/ODC) | {s:.2f} | ~0 | {it} | {s / it:.3f} |")
except ImportError:
    print("(faiss not installed: pip install faiss-cpu)")
