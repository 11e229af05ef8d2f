from app.domain.hnsw import EF_SEARCH_BY_GALLERY, ef_search_for


def test_ef_search_grows_with_the_gallery_and_covers_top_k():
    sizes = [0, 5_000, 10_000, 10_001, 100_000, 500_000, 5_000_000]
    efs = [ef_search_for(n) for n in sizes]
    assert efs == sorted(efs)
    assert ef_search_for(10_000) == EF_SEARCH_BY_GALLERY[0][1]
    assert ef_search_for(10_001) == EF_SEARCH_BY_GALLERY[1][1]
    assert ef_search_for(5_000_000) == EF_SEARCH_BY_GALLERY[-1][1]  # beyond the table: its last row
    assert ef_search_for(10, top_k=500) == 500
