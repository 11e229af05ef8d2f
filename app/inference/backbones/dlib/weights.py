"""dlib's face-recognition ResNet weights read from its own serialised file, with NumPy only.

The pinned `face-recognition-models` wheel (app.core.wheel_files) installs
``face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat`` (dlib-models,
released into the public domain; the package's LICENSE is CC0). The package itself is never
imported (it needs `pkg_resources`, gone from setuptools >= 81): importlib.metadata finds the file.

The format is dlib's `serialize` (dlib/serialize.h, dnn/core.h, dnn/layers.h):
- integers: a control byte (low 4 bits: payload length, bit 0x80: negative), then the
  magnitude little-endian; floats: two integers, mantissa then exponent (m * 2**e);
  bools: ASCII '1'/'0'; strings: length then bytes;
- tensors: version 2, then n, k, nr, nc, then float32 little-endian (NCHW); alias tensors
  (views into a layer's params): version 1 and four dimensions, no data;
- the file: the loss layer's header, one version integer per layer from the output down
  (tags and skips included), the input layer, then every layer's record from the input up,
  each followed by its wrapper's state (three bools, three empty tensors; the first layer
  above the input also writes its sample expansion factor). Tags and skips carry no record:
  the residual wiring is dlib's `examples/dnn_face_recognition_ex.cpp` (app/inference/backbones/dlib/net.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.wheel_files import FACE_RECOGNITION_MODELS, installed_file, installed_sha256

PIN = FACE_RECOGNITION_MODELS
DAT_FILE = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"


def dat_path() -> Path:
    return installed_file(PIN, DAT_FILE)


def dat_sha256() -> str:
    return installed_sha256(PIN, DAT_FILE)


@dataclass
class Layer:
    """One record: its dlib name and what the network needs of it."""

    kind: str  # con_4, affine_, relu_, add_prev_, max_pool_2, avg_pool_2, fc_2
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, int] = field(default_factory=dict)


@dataclass
class DlibNet:
    input_mean: tuple[float, float, float]  # RGB
    input_size: int
    layers: list[Layer]

    def parameter_count(self) -> int:
        return sum(v.size for layer in self.layers for v in layer.weights.values())


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        if size > 8:
            raise ValueError(f"corrupt integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def string(self) -> str:
        n = self.int()
        value = self.data[self.pos : self.pos + n].decode("ascii")
        self.pos += n
        return value

    def bool(self) -> bool:
        c = self.data[self.pos : self.pos + 1]
        if c not in (b"0", b"1"):
            raise ValueError(f"expected a bool at byte {self.pos}, got {c!r}")
        self.pos += 1
        return c == b"1"

    def tensor(self) -> np.ndarray:
        self.expect(2, "tensor version")
        dims = [self.int() for _ in range(4)]
        n = int(np.prod(dims))
        values = np.frombuffer(self.data, "<f4", n, self.pos).reshape(dims)
        self.pos += 4 * n
        return values

    def alias(self) -> list[int]:
        self.expect(1, "alias tensor version")
        return [self.int() for _ in range(4)]

    def expect(self, value: int, what: str) -> None:
        got = self.int()
        if got != value:
            raise ValueError(f"{what}: expected {value}, got {got} (before byte {self.pos})")


def _conv(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
    shape = r.alias()  # [out, in, nr, nc]
    r.alias()  # biases [1, out, 1, 1]
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    n = int(np.prod(shape))
    return Layer("con_4", {"filters": params[:n].reshape(shape), "biases": params[n : n + filters]},
                 {"filters": filters, "kernel": nr, "stride": stride_y, "padding": pad_y,
                  "kernel_x": nc, "stride_x": stride_x, "padding_x": pad_x})


def _affine(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    channels = r.alias()[1]
    r.alias()
    mode = r.int()
    if mode != 0:  # 0: per channel (FC_MODE would be per element)
        raise ValueError(f"affine mode {mode} is not supported")
    return Layer("affine_", {"gamma": params[:channels], "beta": params[channels : 2 * channels]})


def _pool(kind: str):
    def read(r: _Reader) -> Layer:
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(6))
        return Layer(kind, config={"window": nr, "window_x": nc, "stride": stride_y, "stride_x": stride_x,
                                   "padding": pad_y, "padding_x": pad_x})
    return read


def _fc(r: _Reader) -> Layer:
    outputs, inputs = r.int(), r.int()
    params = r.tensor().ravel()
    r.alias()
    r.alias()
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    if bias_mode != 1:  # 1: FC_NO_BIAS, the only mode this network uses
        raise ValueError(f"fc bias mode {bias_mode} is not supported")
    return Layer("fc_2", {"weights": params[: inputs * outputs].reshape(inputs, outputs)})


_RECORDS = {"con_4": _conv, "affine_": _affine, "relu_": lambda r: Layer("relu_"),
            "add_prev_": lambda r: Layer("add_prev_"), "max_pool_2": _pool("max_pool_2"),
            "avg_pool_2": _pool("avg_pool_2"), "fc_2": _fc}


def parse(data: bytes) -> DlibNet:
    r = _Reader(data)
    r.int()  # loss layer version
    if r.string() != "loss_metric_2":
        raise ValueError("not a dlib metric-learning network (loss_metric_2 expected)")
    r.float(), r.float()  # margin, distance threshold (training only)
    marker = data.find(b"input_rgb_image_sized")
    if marker < 0:
        raise ValueError("no input_rgb_image_sized layer")
    while r.pos < marker - 2:  # one version integer per layer, output end first
        r.int()
    if r.string() != "input_rgb_image_sized":
        raise ValueError(f"unexpected layout before byte {r.pos}")
    mean = (r.float(), r.float(), r.float())
    rows, cols = r.int(), r.int()
    if rows != cols:
        raise ValueError("non-square input")
    layers = []
    while r.pos < len(data):
        kind = r.string()
        if kind not in _RECORDS:
            raise ValueError(f"unknown layer record {kind!r} before byte {r.pos}")
        layers.append(_RECORDS[kind](r))
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if len(layers) == 1:
            r.int()  # the first layer's sample expansion factor
    return DlibNet(mean, rows, layers)


def read_network(path: Path | None = None) -> DlibNet:
    return parse((path or dat_path()).read_bytes())
