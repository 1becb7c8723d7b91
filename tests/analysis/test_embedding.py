"""t-SNE embedding, its disk cache, and feature separability, on small clustered features like a CNN's penultimate
layer."""

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

import analysis.embedding as embedding
from analysis.embedding import (
    cached_embedding,
    embed_tsne,
    feature_separability,
    pca_reduce,
    stored_embedding,
)
from bench.tsne_bench import synthetic_features

FAST = {"early_exaggeration_iter": 50, "n_iter": 50}  # for tests that do not care how good the layout is


@pytest.fixture(scope="module")
def clustered():
    return synthetic_features(400, "clustered", dim=128, seed=1)


@pytest.fixture(scope="module")
def clustered_embedding(clustered):
    return embed_tsne(clustered[0], seed=0)


def test_shape_dtype_and_params(clustered_embedding):
    res = clustered_embedding
    assert res.xy.shape == (400, 2) and res.xy.dtype == np.float32 and np.isfinite(res.xy).all()
    assert res.xy.std() > 1.0  # optimised, not still the tiny initialisation
    assert res.params["perplexity"] == 30.0 and res.params["seed"] == 0
    assert res.params["pca_dims_used"] == 50 and res.params["n_features"] == 128
    assert res.source == "computed" and res.seconds > 0
    assert 0.0 < res.pca_variance <= 1.0
    assert set(res.timings) == {"pca", "affinities", "optimize"}


def test_same_seed_same_bytes_other_seed_differs(clustered, clustered_embedding):
    x, _ = clustered
    again = embed_tsne(x, seed=0)
    assert again.xy.tobytes() == clustered_embedding.xy.tobytes()
    other = embed_tsne(x, seed=1)
    assert not np.allclose(other.xy, clustered_embedding.xy)


def test_thread_count_does_not_change_the_result(clustered, clustered_embedding):
    # One thread is the default; a caller may ask for more, which must not change the layout (nor the cache key's
    # meaning: n_jobs is part of the key only when the caller passes it)
    assert clustered_embedding.params["n_jobs"] == 1
    two = embed_tsne(clustered[0][:80], n_jobs=2, **FAST)
    one = embed_tsne(clustered[0][:80], **FAST)
    assert two.params["n_jobs"] == 2
    assert one.xy.tobytes() == two.xy.tobytes()
    with pytest.raises(ValueError, match="n_jobs must be a positive whole number"):
        embed_tsne(clustered[0][:80], n_jobs=0)


def test_perplexity_changes_the_result(clustered, clustered_embedding):
    low = embed_tsne(clustered[0], perplexity=5.0)
    assert low.params["perplexity"] == 5.0
    assert not np.allclose(low.xy, clustered_embedding.xy, atol=1e-2)


def test_embedding_preserves_neighbourhoods_and_classes(clustered, clustered_embedding):
    x, y = clustered
    reduced, _ = pca_reduce(x, 50)
    score = trustworthiness(reduced, clustered_embedding.xy, n_neighbors=10)
    # On this set: ours 0.922, sklearn's default TSNE 0.920, ours stopped after 20 iterations 0.83, the first two
    # principal components 0.74, a shuffled layout 0.50. The goal is "no worse than sklearn minus 0.01".
    assert score > 0.91, score
    shuffled = np.random.default_rng(0).permutation(clustered_embedding.xy)
    assert trustworthiness(reduced, shuffled, n_neighbors=10) < 0.7
    knn_2d = cross_val_predict(KNeighborsClassifier(5), clustered_embedding.xy, y, cv=5)
    assert np.mean(knn_2d == y) > 0.9


def test_progress_reports_stages_and_does_not_change_the_result(clustered, clustered_embedding):
    calls = []
    res = embed_tsne(clustered[0], progress=lambda f, msg: calls.append((f, msg)))
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and len(calls) > 5
    assert any("iteration" in msg for _, msg in calls)
    assert res.xy.tobytes() == clustered_embedding.xy.tobytes()


def test_small_inputs(clustered):
    x, _ = clustered
    tiny = embed_tsne(x[:20, :8], pca_dims=50)
    assert tiny.xy.shape == (20, 2)
    assert tiny.params["perplexity"] == pytest.approx(19 / 3)  # clipped for 20 samples
    assert tiny.params["pca_dims_used"] == 8  # fewer dims than pca_dims: only centred
    one_dim = embed_tsne(x[:30, :1])
    assert one_dim.xy.shape == (30, 2) and np.isfinite(one_dim.xy).all()
    with pytest.raises(ValueError, match="all 10 feature vectors are identical"):
        embed_tsne(np.ones((10, 5)))
    with pytest.raises(ValueError, match="at least 4 samples"):
        embed_tsne(x[:3])
    with pytest.raises(ValueError, match="NaN"):
        embed_tsne(np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        embed_tsne(x.reshape(400, 8, 16))
    with pytest.raises(TypeError, match="unknown t-SNE setting"):
        embed_tsne(x, n_iterations=5)


def test_standardize_is_optional_and_changes_the_input():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(60, 10))) * np.linspace(0.01, 5, 10)
    plain, _ = pca_reduce(x, None)
    scaled, _ = pca_reduce(x, None, standardize=True)
    np.testing.assert_allclose(plain.std(axis=0), x.std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(plain.mean(axis=0), 0.0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ cache
@pytest.fixture
def counted(monkeypatch):
    """Count the real computations behind cached_embedding."""
    calls = []
    real = embedding.embed_tsne

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(embedding, "embed_tsne", counting)
    return calls


def test_cache_hits_do_not_recompute(tmp_path, clustered, counted):
    x = clustered[0][:150]
    assert stored_embedding(x, tmp_path, key="model-a/fc", perplexity=20.0, **FAST) is None  # never computes
    assert len(counted) == 0
    first = cached_embedding(x, tmp_path, key="model-a/fc", perplexity=20.0, **FAST)
    assert first.source == "computed" and len(counted) == 1
    files = list(tmp_path.glob("tsne-*.npz"))
    assert len(files) == 1

    for hit in (cached_embedding(x, tmp_path, key="model-a/fc", perplexity=20.0, **FAST),  # as after a restart
                stored_embedding(x, tmp_path, key="model-a/fc", perplexity=20.0, **FAST)):
        assert hit.source == "disk" and len(counted) == 1
        assert hit.xy.tobytes() == first.xy.tobytes()
        assert hit.params == first.params and hit.seconds == first.seconds and hit.timings == first.timings

    cached_embedding(x, tmp_path, key="model-b/fc", perplexity=20.0, **FAST)
    cached_embedding(x, tmp_path, key="model-a/fc", perplexity=25.0, **FAST)
    changed = x.copy()
    changed[0, 0] += 1.0
    cached_embedding(changed, tmp_path, key="model-a/fc", perplexity=20.0, **FAST)
    assert len(counted) == 4 and len(list(tmp_path.glob("tsne-*.npz"))) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong_shape"])
def test_corrupt_cache_file_is_recomputed_and_overwritten(tmp_path, clustered, counted, damage):
    x = clustered[0][:120]
    first = cached_embedding(x, tmp_path, key="k", **FAST)
    (path,) = tmp_path.glob("tsne-*.npz")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.savez(path, xy=np.zeros((5, 2), np.float32), meta=np.array("{}"))

    recovered = cached_embedding(x, tmp_path, key="k", **FAST)
    assert recovered.source == "computed" and len(counted) == 2
    assert recovered.xy.tobytes() == first.xy.tobytes()
    assert cached_embedding(x, tmp_path, key="k", **FAST).source == "disk"  # the file was rewritten whole
    assert len(counted) == 2 and not list(tmp_path.glob("*.tmp"))


def test_unwritable_cache_dir_warns_and_still_returns(tmp_path, clustered):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    with pytest.warns(RuntimeWarning, match="could not write the cache file"):
        res = cached_embedding(clustered[0][:60], blocker, key="k", **FAST)
    assert res.xy.shape == (60, 2) and res.source == "computed"


# ------------------------------------------------------------------------------------------------ separability
def test_separability_knn_equals_sklearn_leave_one_out():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=80)  # two classes and k=5: no tied votes, so the tie rule does not matter
    x = rng.normal(size=(80, 20)) + y[:, None] * 0.6
    ours = feature_separability(x, y)
    loo = cross_val_predict(KNeighborsClassifier(5), x, y, cv=LeaveOneOut())
    assert ours["knn_accuracy"] == pytest.approx(np.mean(loo == y), abs=1e-12)
    assert 0.6 < ours["knn_accuracy"] < 1.0  # neither trivial nor hopeless


def test_separability_tracks_how_separable_the_classes_are(clustered):
    x, y = clustered
    good = feature_separability(x, y)
    assert good["knn_accuracy"] > 0.9 and good["silhouette"] > 0.03
    assert good["n_samples"] == 400 and good["n_classes"] == 10 and good["knn_k"] == 5
    shuffled = feature_separability(x, np.random.default_rng(0).permutation(y))
    assert shuffled["knn_accuracy"] < 0.3 and shuffled["silhouette"] < 0.0
    assert 0.1 < good["knn_chance"] < 0.3
    hard_x, hard_y = synthetic_features(400, "hard", dim=128, seed=1)
    hard = feature_separability(hard_x, hard_y)
    assert hard["knn_accuracy"] < good["knn_accuracy"] and hard["silhouette"] < good["silhouette"]


def test_separability_tie_goes_to_the_nearest_neighbours_class():
    # With k=4, points 0, 2 and 3 get a 2-2 vote whose nearest neighbour is of the other class, and points 1 and
    # 4 are outvoted 3-1: all five are wrong. "Lowest label wins" (sklearn's tie rule) would get 0, 2, 3 right.
    x = np.array([[0.0], [1.0], [-2.5], [3.2], [-4.6]])
    y = np.array(["A", "B", "A", "A", "B"])
    res = feature_separability(x, y, k=4)
    assert res["knn_k"] == 4
    assert res["knn_accuracy"] == 0.0
