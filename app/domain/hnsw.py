"""HNSW search breadth (pgvector's hnsw.ef_search) for a gallery size, from measured recall.

A graph index's recall falls as the gallery grows at a fixed ef_search, and a missed
nearest neighbour is a wrong or missing identification. Each row is a gallery size and
the smallest ef_search whose recall@1 against exact search was >= 0.99 in
bench/identify_scale.py for the migration's halfvec index (m 32 / ef_construction 128,
face-like 512-D embeddings fitted on the default artefact, docs/benchmarks.md). 10k: 100
(recall@1 1.000 from ef_search 40, recall@10 0.9994 at 100); 100k: 200 (recall@1 0.944 at
40, 0.988 at 100, 0.997 at 200, 1.000 at 400). 1M was not measured with this index (the
build takes about an hour here): 400 is an extrapolation. Between rows the next larger
size's value is used, beyond the last row its value.
"""

from __future__ import annotations

# (largest gallery size, ef_search), ascending
EF_SEARCH_BY_GALLERY: tuple[tuple[int, int], ...] = ((10_000, 100), (100_000, 200), (1_000_000, 400))


def ef_search_for(gallery_size: int, top_k: int = 1) -> int:
    """The ef_search for this gallery size; never below top_k (an HNSW scan yields at most
    ef_search rows)."""
    for size, ef in EF_SEARCH_BY_GALLERY:
        if gallery_size <= size:
            return max(ef, top_k)
    return max(EF_SEARCH_BY_GALLERY[-1][1], top_k)
