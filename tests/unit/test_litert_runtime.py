"""The LiteRT runtime: the converted nets give the Keras embeddings on real aligned faces, the
cache is keyed by what the files depend on, and the runtime is chosen as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.core.config import Settings
from app.inference import litert, runtimes
from app.vision.align import align_face
from tests.conftest import YALE, require_data

PHOTOS = ("subject01.normal", "subject01.happy", "subject02.glasses", "subject05.normal",
          "subject07.sleepy", "subject09.wink", "subject11.leftlight", "subject14.surprised")


@pytest.fixture(scope="module")
def aligned_faces(real_detector, model_artifact):
    """Real Yale photos, detected by YuNet and aligned on the artefact's canvas, as the service does."""
    faces = []
    for name in PHOTOS:
        rgb = np.asarray(Image.open(require_data(YALE / f"{name}.png")).convert("RGB"))
        found = real_detector.detect(rgb)
        assert found, f"YuNet found no face in {name}"
        faces.append(align_face(rgb, found[0].landmarks, model_artifact.alignment))
    return np.stack(faces)


def test_litert_embeddings_match_keras_on_real_aligned_faces(aligned_faces, real_embedder, litert_embedder):
    keras_e = real_embedder.embed(aligned_faces)
    lite_e = litert_embedder.embed(aligned_faces)
    assert lite_e.shape == keras_e.shape == (len(PHOTOS), 256)  # the fused default: SFace 128 + dlib 128
    cosine = np.sum(keras_e * lite_e, axis=1) / (np.linalg.norm(keras_e, axis=1) * np.linalg.norm(lite_e, axis=1))
    assert cosine.min() >= 0.9999, cosine
    # and so the decisions: every pairwise cosine distance the same to 1e-4
    np.testing.assert_allclose(1 - lite_e @ lite_e.T, 1 - keras_e @ keras_e.T, atol=1e-4)


def test_litert_batches_give_the_same_embeddings_as_single_faces(aligned_faces, litert_embedder):
    """Passes of INVOKE_SIZE images with the input resized between them change nothing."""
    whole = litert_embedder.embed(aligned_faces)
    one_by_one = np.concatenate([litert_embedder.embed(f[None]) for f in aligned_faces])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)


def test_cache_file_depends_on_source_head_cut_and_converter(monkeypatch, tmp_path):
    monkeypatch.setattr(litert.NetSpec, "source_sha256", lambda self: "a" * 64)
    spec = litert.NetSpec("sface-keras", "fc1", None, 112)
    name = spec.file_name("tensorflow-cpu 2.21.0 / keras 3.15.1")
    assert name.startswith("sface-keras-") and name.endswith(".tflite")
    assert spec.file_name("tensorflow-cpu 2.22.0 / keras 3.15.1") != name
    assert litert.NetSpec("sface-keras", "other", None, 112).file_name("tensorflow-cpu 2.21.0 / keras 3.15.1") != name
    head = tmp_path / "head.keras"
    head.write_bytes(b"head")
    assert litert.NetSpec("sface-keras", "fc1", head, 112).file_name("tensorflow-cpu 2.21.0 / keras 3.15.1") != name
    monkeypatch.setattr(litert.NetSpec, "source_sha256", lambda self: "b" * 64)
    assert spec.file_name("tensorflow-cpu 2.21.0 / keras 3.15.1") != name


def test_the_default_artefact_has_a_litert_build_and_the_facenet_graph_has_none(model_artifact):
    from app.inference.artifacts import load_artifact
    from app.core.config import ARTIFACTS_DIR

    assert [s.kind for s in litert.net_specs(model_artifact)] == ["sface-keras", "dlib-keras"]
    assert not litert.supports(load_artifact(ARTIFACTS_DIR / "facenet-casia-base-v1"))


def test_runtime_choice_and_its_reason(monkeypatch, model_artifact):
    from app.inference.artifacts import load_artifact
    from app.core.config import ARTIFACTS_DIR

    monkeypatch.setattr(runtimes, "gpu_visible", lambda: None)
    choose = runtimes.choose_runtime
    assert choose(Settings(), model_artifact).name == "litert"
    assert "CPU" in choose(Settings(), model_artifact).reason
    facenet = load_artifact(ARTIFACTS_DIR / "facenet-casia-base-v1")
    assert choose(Settings(), facenet).name == "keras"
    url = "http://tfserving:8501/v1/models/faceapi"
    assert choose(Settings(embedder_url=url), model_artifact) == runtimes.RuntimeChoice(
        "remote", "FACEAPI_EMBEDDER_URL is set")
    assert choose(Settings(runtime="keras"), model_artifact).reason == "FACEAPI_RUNTIME=keras"
    monkeypatch.setattr(runtimes, "gpu_visible", lambda: "/dev/nvidia0")
    gpu = choose(Settings(), model_artifact)
    assert gpu.name == "keras" and "/dev/nvidia0" in gpu.reason
    assert choose(Settings(runtime="litert"), model_artifact).name == "litert"  # asked for: kept
    for bad in (Settings(runtime="remote"), Settings(runtime="litert", embedder_url=url)):
        with pytest.raises(runtimes.RuntimeChoiceError):
            choose(bad, model_artifact)
    with pytest.raises(runtimes.RuntimeChoiceError, match="no LiteRT build"):
        choose(Settings(runtime="litert"), facenet)


def test_the_build_step_keeps_no_file_that_does_not_reproduce_keras(monkeypatch, tmp_path):
    """A conversion that loses the weights (as from_concrete_functions does on Keras 3) or
    converts the wrong net is refused before anything lands in the cache."""
    import keras

    from app.inference import litert_build

    def other_net():
        x = keras.Input((150, 150, 3))
        return keras.Model(x, keras.layers.Dense(128)(keras.layers.GlobalAveragePooling2D()(x)))

    real_convert = litert_build.convert
    monkeypatch.setattr(litert_build, "convert", lambda model: real_convert(other_net()))
    spec = litert.NetSpec("dlib-keras", "fc", None, 150)
    path = tmp_path / spec.file_name("test")
    with pytest.raises(RuntimeError, match="does not reproduce the Keras one"):
        litert_build.build_net(spec, path, "test")
    assert list(tmp_path.iterdir()) == []


def mapped_resident_bytes(path) -> int:
    """This process's resident bytes of the memory-mapped file `path` (/proc/self/smaps)."""
    import re
    from pathlib import Path

    total, current = 0, None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            current = line.split(maxsplit=5)[5] if len(line.split(maxsplit=5)) == 6 else ""
        elif line.startswith("Rss:") and current == str(path):
            total += int(line.split()[1]) * 1024
    return total


def test_the_mapped_model_file_stays_out_of_memory_after_xnnpack_packed_it(model_artifact, litert_embedder):
    """What the service's RSS at ready relies on: once a net is loaded and has run a batch with
    its input resized, at most a few MB of its .tflite file are resident (XNNPACK reads its own
    packed copy of the weights), and the answers are unchanged. (`litert_embedder`: the cache is built.)"""
    from pathlib import Path

    settings = Settings()
    spec = litert.net_specs(model_artifact)[0]
    path = litert.cached_path(settings.model_cache_dir, spec).resolve()
    net = litert.LiteRTNet(path, threads=2, invoke_size=4)
    x = np.random.default_rng(0).uniform(0, 255, (9, spec.input_size, spec.input_size, 3)).astype(np.float32)
    out = net(x)  # passes of 4, 4, 1: resized twice
    size = Path(path).stat().st_size
    assert mapped_resident_bytes(path) < 0.1 * size
    np.testing.assert_allclose(net(x[:1]), out[:1], atol=1e-5)


def test_a_cache_prepared_elsewhere_is_found_without_tensorflow(monkeypatch, tmp_path, model_artifact):
    """The build step's manifest names its converter; a process without TensorFlow (the default
    Docker image, whose cache comes from the build stage) keys the files by it."""
    from app.inference import litert_build

    converter = litert.converter_version()
    assert converter  # this test process has TensorFlow: the build side
    for spec in litert.net_specs(model_artifact):  # as if built: prepare then keeps them
        (tmp_path / spec.file_name(converter)).write_bytes(b"tflite")
    litert_build.prepare(model_artifact, tmp_path, log=lambda line: None)
    assert json.loads((tmp_path / litert.MANIFEST).read_text()) == {"converter": converter}
    want = [tmp_path / s.file_name(converter) for s in litert.net_specs(model_artifact)]

    monkeypatch.setattr(litert, "converter_version", lambda: None)  # the serving side: no TensorFlow
    assert [litert.cached_path(tmp_path, s) for s in litert.net_specs(model_artifact)] == want
    assert litert.missing_files(model_artifact, tmp_path) == []
    # the manifest is only read without TensorFlow: an installed converter keys by itself
    monkeypatch.setattr(litert, "converter_version", lambda: "tensorflow-cpu 9.9.9 / keras 9.9.9")
    assert litert.cached_path(tmp_path, litert.net_specs(model_artifact)[0]) != want[0]


def test_without_tensorflow_or_manifest_the_cache_is_a_clear_error(monkeypatch, tmp_path, model_artifact):
    monkeypatch.setattr(litert, "converter_version", lambda: None)
    spec = litert.net_specs(model_artifact)[0]
    with pytest.raises(litert.ModelCacheMissing, match=r"converter\.json is missing.*models prepare"):
        litert.cached_path(tmp_path, spec)
    (tmp_path / litert.MANIFEST).write_text("not json")
    with pytest.raises(litert.ModelCacheMissing, match=r"converter\.json is missing"):
        litert.cached_path(tmp_path, spec)


def test_without_tensorflow_a_missing_file_is_a_clear_error_not_a_build(monkeypatch, tmp_path, model_artifact):
    """With a manifest but not the artefact's files (another FACEAPI_MODEL), the service cannot
    build them: it says so instead of running a build step that cannot work."""
    monkeypatch.setattr(litert, "converter_version", lambda: None)
    litert.write_manifest(tmp_path, "tensorflow-cpu 2.21.0 / keras 3.15.1")
    monkeypatch.setattr(runtimes, "prepare_in_subprocess", lambda *a: pytest.fail("build step ran"))
    settings = Settings(model_cache_dir=tmp_path)
    with pytest.raises(litert.ModelCacheMissing, match="TensorFlow, which builds it, is not installed"):
        runtimes.build_for(runtimes.RuntimeChoice("litert", "test"), settings, model_artifact)
