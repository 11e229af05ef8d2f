"""HNSW search breadth (pgvector's hnsw.ef_search) for a gallery size, from measured recall.

A graph index's recall falls as the gallery grows at a fixed ef_search, and a missed
nearest neighbour is a wrong or missing identification. Each row is a gallery size and
the smallest ef_search whose recall@1 against exact search was >= 0.99 in
bench/identify_scale.py (face-like 512-D embeddings, docs/benchmarks.md): 10k: 100
(0.992); 100k: 200 (0.996 with m 32 / ef_construction 128). 1M was not measured with
m 32 / 128 (the build takes about an hour here): 400 is an extrapolation. Between rows
the next larger size's value is used, beyond the last row its value.
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
