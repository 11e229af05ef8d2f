"""`python -m app enroll-dir DIR --url URL --key KEY [--person-from file|parent-dir|prefix]`:
enroll a folder of photos through the HTTP API, so the service's rules (one clear face, limits,
keys) apply exactly as to any client.

Which photos are one person (--person-from):
- `file` (default): each photo directly in DIR is one person, whose id is the file name without
  its extension; each subfolder is one person, whose id is the folder name, enrolled from its
  first photo (sorted by name) that the service accepts.
- `parent-dir`: every photo in DIR's subfolders (any depth) belongs to the person named after
  the folder that holds it; photos directly in DIR are one person each, as with `file`.
- `prefix`: photos directly in DIR belong to the person named by the file name up to the first
  `--separator` (default "."): subject01.happy.png and subject01.sad.png are "subject01".
With `parent-dir` and `prefix` every photo of a person counts: the first one the service
accepts enrolls them (POST /enroll), each other one is added to their template (POST
/persons/{id}/faces), so their reference is pooled from all their accepted photos.

Prints progress, then enrolled counts, faces stored and refusals by code; exits 1 when any
person could not be enrolled (a refused extra photo is reported, the person still counts).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
# a refusal of the photo itself: a subfolder's next photo may do better
PHOTO_REFUSALS = {"no_face", "multiple_faces", "face_too_small", "low_quality", "image_corrupt",
                  "image_too_small", "image_too_many_pixels", "unsupported_image_type",
                  "payload_too_large"}
RETRYABLE = {429, 503}
PERSON_RULES = ("file", "parent-dir", "prefix")
MAX_RETRIES = 5


@dataclass(frozen=True)
class Job:
    person_id: str
    photos: tuple[Path, ...]
    all_photos: bool = False  # every accepted photo joins the template, not only the first


@dataclass
class Outcome:
    job: Job
    code: str  # "enrolled", "replaced" or the refusal's code
    detail: str = ""
    photo: Path | None = None
    tried: list[str] = field(default_factory=list)
    faces: int = 0  # faces stored for the person (the template's size)
    extra_refused: list[tuple[Path, str, str]] = field(default_factory=list)  # (photo, code, detail)

    @property
    def ok(self) -> bool:
        return self.code in ("enrolled", "replaced")


def add_parser(commands) -> None:
    p = commands.add_parser(
        "enroll-dir", help="enroll a folder of photos over the HTTP API (one person per photo or subfolder, "
             "or several photos per person grouped by folder or file-name prefix)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, help="folder of photos and/or one subfolder per person")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default %(default)s)")
    p.add_argument("--key", required=True, help="an admin API key")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default %(default)s)")
    p.add_argument("--replace", action="store_true", help="re-enroll persons who are already enrolled")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default %(default)s)")
    p.add_argument("--person-from", choices=PERSON_RULES, default="file",
                   help="which photos are one person: file (default), parent-dir or prefix (see above)")
    p.add_argument("--separator", default=".",
                   help="with --person-from prefix: the person id is the file name up to this (default %(default)r)")


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def find_jobs(root: Path, person_from: str = "file", separator: str = ".") -> list[Job]:
    if person_from not in PERSON_RULES:
        raise ValueError(f"person_from must be one of {', '.join(PERSON_RULES)}")
    if person_from == "prefix":
        if not separator:
            raise ValueError("the separator must not be empty")
        groups: dict[str, list[Path]] = {}
        for p in _photos(root):
            groups.setdefault(p.name.split(separator, 1)[0] or p.stem, []).append(p)
        return [Job(person, tuple(found), all_photos=True) for person, found in sorted(groups.items())]
    jobs = [Job(p.stem, (p,)) for p in _photos(root)]
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if person_from == "file":
        for sub in subfolders:
            if found := _photos(sub):
                jobs.append(Job(sub.name, tuple(found)))
        return jobs
    groups = {}
    for sub in subfolders:
        for folder in sorted([sub, *(d for d in sub.rglob("*") if d.is_dir())]):
            if any(part.startswith(".") for part in folder.relative_to(root).parts):
                continue
            groups.setdefault(folder.name, []).extend(_photos(folder))
    jobs += [Job(person, tuple(found), all_photos=True) for person, found in sorted(groups.items()) if found]
    return jobs


async def enroll_one(client: httpx.AsyncClient, job: Job, replace: bool) -> Outcome:
    outcome = Outcome(job, "no_photo", "no photo in the folder")
    for i, photo in enumerate(job.photos):
        code, detail = await _post(client, "/enroll", photo,
                                   {"person_id": job.person_id, "replace": "true" if replace else "false"})
        outcome = Outcome(job, code, detail, photo, outcome.tried + [code], faces=1 if code in (
            "enrolled", "replaced") else 0)
        if outcome.ok or code not in PHOTO_REFUSALS:
            break
    if not (outcome.ok and job.all_photos):
        return outcome
    for photo in job.photos[i + 1:]:  # the rest join the template, in name order
        code, detail = await _post(client, f"/persons/{job.person_id}/faces", photo, {})
        outcome.tried.append(code)
        if code == "added":
            outcome.faces += 1
        else:
            outcome.extra_refused.append((photo, code, detail))
    return outcome


async def _post(client: httpx.AsyncClient, path: str, photo: Path, data: dict) -> tuple[str, str]:
    content = photo.read_bytes()
    for attempt in range(MAX_RETRIES + 1):
        try:
            r = await client.post(path, data=data, files={"image": (photo.name, content)})
        except httpx.TransportError as exc:
            return "connection_error", f"{type(exc).__name__}: {exc}"
        if r.status_code in RETRYABLE and attempt < MAX_RETRIES:
            await asyncio.sleep(min(30.0, float(r.headers.get("retry-after", "1"))))
            continue
        break
    if r.status_code == 201:
        if path != "/enroll":
            return "added", ""
        return ("replaced" if r.json().get("replaced") else "enrolled"), ""
    try:
        body = r.json()
        return body.get("code", f"http_{r.status_code}"), body.get("detail", "")
    except ValueError:
        return f"http_{r.status_code}", r.text[:200]


class Progress:
    """A text bar on a terminal; on a pipe, one line per 10 %."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total, self.done, self.failed, self.stream = total, 0, 0, stream
        self.tty = stream.isatty()
        self.started = time.perf_counter()
        self._last_decile = -1

    def update(self, outcome: Outcome) -> None:
        self.done += 1
        self.failed += not outcome.ok
        decile = self.done * 10 // max(self.total, 1)
        if not self.tty and decile == self._last_decile and self.done != self.total:
            return
        self._last_decile = decile
        width = 30
        filled = width * self.done // max(self.total, 1)
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"enrolled {self.done - self.failed}, refused {self.failed} ({rate:.1f}/s)")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


async def enroll_all(jobs: list[Job], url: str, key: str, concurrency: int, replace: bool,
                     timeout: float, progress: Progress | None = None) -> list[Outcome]:
    semaphore = asyncio.Semaphore(max(1, concurrency))
    limits = httpx.Limits(max_connections=max(1, concurrency))
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=timeout,
                                 limits=limits) as client:
        async def run(job: Job) -> Outcome:
            async with semaphore:
                outcome = await enroll_one(client, job, replace)
            if progress:
                progress.update(outcome)
            return outcome

        return await asyncio.gather(*(run(j) for j in jobs))


def summarize(outcomes: list[Outcome], seconds: float, concurrency: int) -> str:
    codes = Counter(o.code for o in outcomes)
    ok = codes.pop("enrolled", 0) + codes.pop("replaced", 0)
    photos = sum(len(o.tried) for o in outcomes)
    lines = [f"enrolled {ok} of {len(outcomes)} persons ({photos} photos sent) in {seconds:.1f} s, "
             f"{concurrency} at a time"]
    if codes:
        lines.append("refused: " + ", ".join(f"{c} {n}" for c, n in codes.most_common()))
        failed = [o for o in outcomes if not o.ok]
        for o in failed[:20]:
            where = o.photo.name if o.photo else "-"
            lines.append(f"  {o.job.person_id} ({where}): {o.code}: {o.detail}")
        if len(failed) > 20:
            lines.append(f"  ... and {len(failed) - 20} more")
    if any(o.job.all_photos for o in outcomes):
        sizes = [o.faces for o in outcomes if o.ok]
        extra = Counter(code for o in outcomes for _, code, _ in o.extra_refused)
        lines.append(f"faces stored: {sum(sizes)}" + (f" (per person {min(sizes)}-{max(sizes)})" if sizes else "")
                     + (("; photos refused: " + ", ".join(f"{c} {n}" for c, n in extra.most_common()))
                        if extra else ""))
        shown = [(o.job.person_id, p, c, d) for o in outcomes for p, c, d in o.extra_refused]
        for person_id, p, c, d in shown[:20]:
            lines.append(f"  {person_id} ({p.name}): {c}: {d}")
        if len(shown) > 20:
            lines.append(f"  ... and {len(shown) - 20} more")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"{args.dir} is not a folder", file=sys.stderr)
        return 2
    try:
        jobs = find_jobs(args.dir, args.person_from, args.separator)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not jobs:
        print(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in {args.dir} or its subfolders",
              file=sys.stderr)
        return 2
    print(f"enrolling {len(jobs)} persons from {args.dir} at {args.url}", file=sys.stderr)
    started = time.perf_counter()
    outcomes = asyncio.run(enroll_all(jobs, args.url.rstrip("/"), args.key, args.concurrency,
                                      args.replace, args.timeout, Progress(len(jobs))))
    print(summarize(outcomes, time.perf_counter() - started, args.concurrency))
    return 0 if all(o.ok for o in outcomes) else 1
