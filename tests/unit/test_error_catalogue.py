"""One owner per error: each class in app.domain.errors carries its code, title and HTTP status;
the problem mapping, the OpenAPI examples and the error table of docs/api.md are read from the
classes, and every code the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.api import examples, problems
from app.domain import errors

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
CODES = {cls.code for cls in errors.all_errors()}


def documented_codes(doc: str) -> set[str]:
    """Problem codes the text names: the first column of a table row whose second column is an
    HTTP status, `NNN `code``, `"code": "x"` in an example body, and problem type URNs."""
    found = set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|\s*[1-5]\d\d\s*\|", doc, re.M))
    found |= set(re.findall(r"\b[1-5]\d\d `([a-z][a-z_]*)`", doc))
    found |= set(re.findall(r'"code":\s*"([a-z_]+)"', doc))
    found |= set(re.findall(r"urn:faceapi:problem:([a-z_]+)", doc))
    return found


def test_every_error_class_carries_code_title_and_an_error_status():
    assert len(errors.all_errors()) >= 30
    for cls in errors.all_errors():
        assert cls.code and cls.title and cls.when, cls
        assert 400 <= cls.status <= 599, cls


def test_codes_are_unique():
    codes = [cls.code for cls in errors.all_errors()]
    assert len(codes) == len(set(codes))


def test_an_error_class_without_a_status_is_refused():
    with pytest.raises(TypeError, match="status"):
        type("Nameless", (errors.DomainError,), {"code": "x", "title": "X", "when": "never"})
    with pytest.raises(TypeError, match="status"):
        type("Bad", (errors.DomainError,), {"code": "x", "title": "X", "when": "never", "status": 200})


def test_problem_status_is_the_class_status():
    for cls in errors.all_errors():
        assert problems.status_of(cls("x")) == cls.status == problems.STATUS[cls.code]
        assert problems.problem_of(cls("x"), "/p").status_code == cls.status


def test_openapi_examples_take_the_status_from_the_class():
    for cls in errors.all_errors():
        if cls.any_route:
            continue
        if cls is errors.InvalidRequest:  # every route lists its example, a body with `errors`
            assert examples.INVALID_REQUEST["status"] == cls.status
            assert cls.status in examples.responses("/p", None)
            continue
        assert examples.problem_example(cls, "/p")["status"] == cls.status
        assert cls.status in examples.responses("/p", None, cls, invalid_request=False)


def test_docs_error_table_is_the_generated_one():
    doc = API_DOC.read_text()
    assert problems.with_error_table(doc) == doc, (
        "docs/api.md's error table differs from app/domain/errors.py: "
        "run python -m app.api.problems --write docs/api.md")
    for cls in errors.all_errors():
        assert f"| `{cls.code}` | {cls.status} |" in doc


def test_every_code_the_api_doc_names_exists():
    named = documented_codes(API_DOC.read_text())
    assert {"person_exists", "no_face", "internal_error"} <= named  # the finder finds them
    assert named <= CODES, named - CODES


def test_every_code_the_other_docs_name_exists():
    for doc in sorted(API_DOC.parent.glob("*.md")):
        named = documented_codes(doc.read_text())
        assert named <= CODES, (doc.name, named - CODES)


def test_a_documented_code_that_does_not_exist_is_found():
    planted = "| `no_such_code` | 418 | never |\nanswers 422 `face_unclear` then\n"
    assert documented_codes(planted) - CODES == {"no_such_code", "face_unclear"}
