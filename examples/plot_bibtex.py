"""
Extreme multi-label classification on Bibtex
=============================================

Trains :class:`slidelearn.SlideClassifier` on the real Bibtex tag-recommendation
data (4,880 training and 2,515 test rows, 1,836 binary features, 159 labels, read
from ``../shared/data/bibtex`` in the Extreme Classification Repository format) and
reports precision@1/3/5 with exact and with LSH inference, plus training time.
"""
# %%
import sys
import time
from pathlib import Path

from slidelearn import SlideClassifier
from slidelearn.datasets import load_xc_repository
from slidelearn.metrics import precision_at_k

data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bibtex"
if len(sys.argv) > 1:
    data = Path(sys.argv[1])
Xtr, Ytr = load_xc_repository(data / "train.txt")
Xte, Yte = load_xc_repository(data / "test.txt")
print(f"train {Xtr.shape}, test {Xte.shape}, {Ytr.shape[1]} labels")

# %%
clf = SlideClassifier(random_state=0, verbose=1)
t0 = time.perf_counter()
clf.fit(Xtr, Ytr)
print(f"trained {clf.n_iter_} epochs in {time.perf_counter() - t0:.1f} s")

# %%
for mode in ("exact", "lsh"):
    t0 = time.perf_counter()
    labels, _ = clf.predict_topk(Xte, k=5, inference=mode)
    dt = time.perf_counter() - t0
    p = [precision_at_k(Yte, labels, k=k) for k in (1, 3, 5)]
    print(f"{mode:>5}: P@1 {p[0]:.4f}  P@3 {p[1]:.4f}  P@5 {p[2]:.4f}  ({dt * 1e3:.0f} ms)")
