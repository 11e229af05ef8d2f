"""RemoteEmbedder against the TensorFlow Serving REST predict format, with the real exported
SavedModel behind it in-process (TensorFlow Serving itself cannot run on this machine).

The base embedder is exported by the trainer's export code (`python -m model faces export
--base-only`: prewhitening and the Keras port of the pretrained base, signatures
`serving_default` float32 and `serving_uint8`, `images: [None,160,160,3] -> {"embeddings":
[None,512]}`), reloaded with tf.saved_model.load, and served by a tiny HTTP handler that
speaks `POST /v1/models/<name>:predict` with `inputs` or `instances`. The service embeds
locally with the frozen graph, so the two agree to the port's precision (< 1e-4).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytestmark = pytest.mark.slow
MODEL_NAME = "faceapi"


def export_base_saved_model(path) -> None:
    """The SavedModel that `python -m model faces export --base-only` writes, by the same code
    (model/faces/export.py): prewhitening, the Keras port of the base with the graph's weights."""
    from model.faces import export

    export.export_saved_model(export.serving_model(None, "Bottleneck"), path)


class FakeTFServing:
    """POST /v1/models/<name>:predict in TensorFlow Serving's REST format."""

    def __init__(self, saved_model_dir) -> None:
        import tensorflow as tf

        self.tf = tf
        self.loaded = tf.saved_model.load(str(saved_model_dir))
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                if self.path != f"/v1/models/{MODEL_NAME}:predict":
                    return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({k: v for k, v in body.items() if k not in ("inputs", "instances")})
                sig = outer.loaded.signatures[body.get("signature_name", "serving_default")]
                (name,) = sig.structured_input_signature[1]  # one input, whatever its name
                if "inputs" in body:
                    out = sig(**{name: outer.tf.constant(body["inputs"], outer.tf.float32)})
                    return self._reply(200, {"outputs": out["embeddings"].numpy().tolist()})
                out = sig(**{name: outer.tf.constant(body["instances"], outer.tf.float32)})
                return self._reply(200, {"predictions": out["embeddings"].numpy().tolist()})

            def _reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/models/{MODEL_NAME}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tfserving(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved_model") / "1"
    export_base_saved_model(path)
    with FakeTFServing(path) as server:
        yield server


@pytest.fixture(scope="module")
def base_artifact():
    """The served SavedModel is the base export, so compare with the base artefact
    (the service default may be a fine-tuned one)."""
    from app.inference.artifacts import load_artifact
    from model.faces.artifact import ARTIFACTS, BASE_VERSION

    return load_artifact(ARTIFACTS / BASE_VERSION)


@pytest.fixture(scope="module")
def base_embedder(base_artifact):
    from app.inference.registry import build_embedder

    return build_embedder(base_artifact)


@pytest.fixture(scope="module")
def aligned_faces(base_artifact):
    from app.vision.decode import decode_image
    from app.vision.align import align_face
    from app.vision.detect import YuNetDetector
    from tests.conftest import yale_bytes

    detector = YuNetDetector()
    faces = []
    for name in ("subject01.normal", "subject02.happy", "subject05.glasses"):
        rgb = decode_image(yale_bytes(name))
        faces.append(align_face(rgb, detector.detect(rgb)[0].landmarks, base_artifact.alignment))
    return np.stack(faces)


def test_remote_embeddings_equal_the_local_embedder(tfserving, aligned_faces, base_artifact, base_embedder):
    from app.inference.embedder import Embedder
    from app.inference.remote import RemoteEmbedder

    remote = RemoteEmbedder(tfserving.url, base_artifact)
    assert isinstance(remote, Embedder)
    assert remote.model_version == base_artifact.model_version == base_embedder.model_version
    got = remote.embed(aligned_faces)
    want = base_embedder.embed(aligned_faces)
    assert got.shape == (3, 512)
    np.testing.assert_allclose(got, want, atol=1e-4)  # Keras port vs frozen graph (tests/model)
    assert (np.sum(got * want, axis=1) > 0.9999).all()
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert tfserving.requests[-1] == {"signature_name": "serving_default"}
    assert remote.embed(aligned_faces[:0]).shape == (0, 512)


def test_row_format_replies_and_errors(tfserving, aligned_faces, base_artifact):
    import httpx

    from app.inference.remote import RemoteEmbedder, RemoteEmbedderError, _embeddings_of

    assert _embeddings_of({"predictions": [{"embeddings": [1.0, 0.0]}]}) == [[1.0, 0.0]]
    assert _embeddings_of({"outputs": {"embeddings": [[0.0, 1.0]]}}) == [[0.0, 1.0]]
    r = httpx.post(tfserving.url + ":predict", json={"instances": aligned_faces[:1].astype(float).tolist()})
    assert len(r.json()["predictions"][0]) == 512
    with pytest.raises(RemoteEmbedderError, match="404"):
        RemoteEmbedder(tfserving.url.replace(MODEL_NAME, "nope"), base_artifact).embed(aligned_faces[:1])
    with pytest.raises(RemoteEmbedderError, match="unreachable"):
        RemoteEmbedder("http://127.0.0.1:9/v1/models/x", base_artifact, timeout_s=2).embed(aligned_faces[:1])
