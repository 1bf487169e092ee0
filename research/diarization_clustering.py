"""Exploration (not a benchmark): which clustering of Resemblyzer window embeddings diarizes best.

12 conversations built as benchmarks/diarization.py builds them (seed 5, speakers of the speaker-fold run's test
folds), the speech regions taken from the clips (oracle VAD, so that only the clustering differs); DER with
pyannote.metrics (0.25 s collar). Results: research/diarization_clustering.md.

    .venv/bin/python research/diarization_clustering.py runs/serkit_default
"""
import sys, numpy as np, pickle, os
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))  # its conversation builder
import diarization as B
from serkit.evaluation.heldout import read_run_material
from serkit.speakers import ResemblyzerEncoder, DiarizationConfig
from serkit.speakers.diarization import speaker_windows, _turns, cluster
cache = "/tmp/diarization_clustering.pkl"  # the embeddings, reused between variants
if os.path.exists(cache):
    convs = pickle.load(open(cache, "rb"))
else:
    m = read_run_material(sys.argv[1] if len(sys.argv) > 1 else "runs/serkit_default")
    table = m.table; enc = ResemblyzerEncoder()
    gender = table.groupby("speaker")["gender"].first().to_dict()
    rng = np.random.default_rng(5); convs = []
    for k in range(12):
        fold = m.folds[k % len(m.folds)]
        pool = sorted(set(table["speaker"].iloc[fold.split.test]))
        spk = B.pick_speakers(pool, int(rng.integers(2, 5)), gender, rng)
        c = B.build_conversation(table, spk, np.random.default_rng([5, k]))
        clips = sorted((s, e) for s, e, _, _ in c["clips"])
        regions = []
        for s, e in clips:
            if regions and s <= regions[-1][1] + 0.3: regions[-1][1] = max(regions[-1][1], e)
            else: regions.append([s, e])
        regions = [tuple(r) for r in regions]
        spans = speaker_windows(regions, 1.6, 0.8)
        X = enc.embed([c["signal"][round(s*16000):round(e*16000)] for s, e in spans])
        convs.append({"turns": c["turns"], "speakers": spk, "regions": regions, "spans": spans, "X": X})
        print(k, len(spk), len(X), file=sys.stderr)
    pickle.dump(convs, open(cache, "wb"))

from sklearn.cluster import SpectralClustering, AgglomerativeClustering
def spectral(X, k=None, kmax=8):
    S = X @ X.T / np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(X, axis=1))
    A = np.clip(S, 0, 1)
    # row-wise refinement (Wang et al. 2018): keep each row's top p share, symmetrise
    p = max(2, int(0.2 * len(A)))
    thr = -np.sort(-A, axis=1)[:, p - 1:p]
    A = np.where(A >= thr, A, 0.01 * A); A = np.maximum(A, A.T)
    if k is None:
        d = A.sum(1); L = np.eye(len(A)) - A / np.sqrt(np.outer(d, d))
        ev = np.sort(np.linalg.eigvalsh(L))[: kmax + 1]
        gaps = np.diff(ev); k = int(np.argmax(gaps[:kmax])) + 1
    if k == 1: return np.zeros(len(X), int)
    return SpectralClustering(n_clusters=k, affinity="precomputed", random_state=0, assign_labels="cluster_qr").fit_predict(A)
def smooth(X, spans, w=1):
    Y = X.copy()
    for i in range(len(X)):
        lo, hi = max(0, i - w), min(len(X), i + w + 1)
        nb = [j for j in range(lo, hi) if abs(spans[j][0] - spans[i][0]) <= 0.8 * w + 1e-6]
        Y[i] = X[nb].mean(0)
    return Y
def score(c, labels, cfg=DiarizationConfig()):
    d = _turns(c["spans"], labels, c["X"], c["regions"], cfg)
    return B.der(c["turns"], d.turns)[0], len(d.speakers)
res = {}
for c in convs:
    n = len(c["speakers"]); X = c["X"]
    rows = {}
    rows["agg known"] = score(c, AgglomerativeClustering(n_clusters=n, metric="cosine", linkage="average").fit_predict(X))
    for t in (0.4, 0.45, 0.5, 0.55):
        rows[f"agg auto {t}"] = score(c, cluster(X, DiarizationConfig(threshold=t)))
    rows["spec known"] = score(c, spectral(X, n))
    rows["spec auto"] = score(c, spectral(X))
    Xs = smooth(X, c["spans"])
    rows["agg known smooth"] = score(c, AgglomerativeClustering(n_clusters=n, metric="cosine", linkage="average").fit_predict(Xs))
    rows["spec known smooth"] = score(c, spectral(Xs, n))
    rows["spec auto smooth"] = score(c, spectral(Xs))
    for key, (d, cnt) in rows.items():
        res.setdefault(key, []).append((d, cnt == n))
for key, v in res.items():
    print(f"{key:22s} DER {100*np.mean([a for a, _ in v]):5.1f}  count {100*np.mean([b for _, b in v]):4.0f}")
print("---")
def spectral2(X, k=None, kmax=8, pshare=0.2, floor=0.01):
    S = X @ X.T / np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(X, axis=1))
    A = np.clip(S, 0, 1)
    p = max(2, int(pshare * len(A)))
    thr = -np.sort(-A, axis=1)[:, p - 1:p]
    A = np.where(A >= thr, A, floor * A); A = np.maximum(A, A.T)
    d = A.sum(1); L = np.eye(len(A)) - A / np.sqrt(np.outer(d, d))
    ev = np.sort(np.linalg.eigvalsh(L))[: kmax + 1]
    if k is None:
        gaps = np.diff(ev); k = int(np.argmax(gaps[:kmax])) + 1
    return k, ev
for ps in (0.1, 0.2, 0.3, 0.5):
  for fl in (0.0, 0.01, 0.1):
    ok = []
    for c in convs:
        Xs = smooth(c["X"], c["spans"])
        k, ev = spectral2(Xs, pshare=ps, floor=fl)
        ok.append(k == len(c["speakers"]))
    print(ps, fl, np.mean(ok))
for c in convs:
    Xs = smooth(c["X"], c["spans"]); k, ev = spectral2(Xs)
    print(len(c["speakers"]), k, np.round(ev[:6], 3))
print("=== nme")
def nme(X, kmax=8, grid=(0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)):
    S = X @ X.T / np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(X, axis=1))
    best = None
    for ps in grid:
        A = np.clip(S, 0, 1); p = max(2, int(ps * len(A)))
        thr = -np.sort(-A, axis=1)[:, p - 1:p]
        A = np.where(A >= thr, A, 0.0); A = np.maximum(A, A.T)
        d = A.sum(1); L = np.diag(d) - A
        ev = np.sort(np.linalg.eigvalsh(L))
        ev = ev / ev[-1]
        gaps = np.diff(ev[: kmax + 1]); k = int(np.argmax(gaps)) + 1; g = gaps.max()
        r = ps / g
        if best is None or r < best[0]: best = (r, ps, k, A)
    return best
ok=[];ders=[]
for c in convs:
    Xs = smooth(c["X"], c["spans"]); r, ps, k, A = nme(Xs)
    lab = np.zeros(len(Xs), int) if k == 1 else SpectralClustering(n_clusters=k, affinity="precomputed", random_state=0, assign_labels="cluster_qr").fit_predict(A)
    d, cnt = score(c, lab); ok.append(cnt == len(c["speakers"])); ders.append(d)
    print(len(c["speakers"]), k, ps, round(d, 3))
print("nme", np.mean(ders), np.mean(ok))
print("=== absorb")
from serkit.speakers.diarization import _absorb_small_clusters
for mins in (0, 6, 10, 15):
    ok=[];ders=[]
    for c in convs:
        Xs = smooth(c["X"], c["spans"]); lab = spectral(Xs)
        lab = _absorb_small_clusters(Xs, lab, round(mins / 0.8))
        d, cnt = score(c, lab); ok.append(cnt == len(c["speakers"])); ders.append(d)
    print(mins, round(100*np.mean(ders),1), np.mean(ok), [np.bincount(spectral(smooth(c["X"], c["spans"]))).tolist() for c in convs][:0])
for c in convs:
    Xs = smooth(c["X"], c["spans"]); lab = spectral(Xs); print(len(c["speakers"]), np.bincount(lab).tolist())
print("=== merge")
def merge_close(X, lab, t):
    lab = lab.copy()
    while True:
        ks = np.unique(lab)
        if len(ks) < 2: return lab
        C = np.stack([X[lab == k].mean(0) for k in ks]); C /= np.linalg.norm(C, axis=1, keepdims=True)
        S = C @ C.T; np.fill_diagonal(S, -1)
        i, j = np.unravel_index(np.argmax(S), S.shape)
        if S[i, j] < t: return np.unique(lab, return_inverse=True)[1]
        lab[lab == ks[j]] = ks[i]
for c in convs:
    Xs = smooth(c["X"], c["spans"]); lab = spectral(Xs)
    ks = np.unique(lab); C = np.stack([Xs[lab == k].mean(0) for k in ks]); C /= np.linalg.norm(C, axis=1, keepdims=True)
    S = C @ C.T; print(len(c["speakers"]), len(ks), np.round(np.sort(S[np.triu_indices(len(ks), 1)])[::-1][:3], 3))
for t in (0.8, 0.85, 0.88, 0.9, 0.92, 0.95):
    ok=[];ders=[]
    for c in convs:
        Xs = smooth(c["X"], c["spans"]); lab = merge_close(Xs, spectral(Xs), t)
        d, cnt = score(c, lab); ok.append(cnt == len(c["speakers"])); ders.append(d)
    print(t, round(100*np.mean(ders),1), np.mean(ok))
