"""Reading the pod: the downward-API file format (Go quoting), what labels and annotations mean, the
mirror annotation's validation, and reading across the kubelet's atomic symlink swap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.runtime.podinfo_dir import PodInfoDir, render

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.podinfo import PodView, QuoteError, go_unquote, parse_downward, parse_mirror, pod_view
from modeldeploy.runtime.podwatch import PodWatcher, read_view


@pytest.mark.parametrize(
    ("quoted", "value"),
    [
        ('"plain"', "plain"),
        ('""', ""),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"two\\nlines\\ttab"', "two\nlines\ttab"),
        ('"\\x41\\u00e9\\U0001F600"', "A\u00e9\U0001f600"),
        ('"\\xc3\\xa9"', "\u00e9"),  # bytes of UTF-8, joined
        ('"\\101"', "A"),  # octal
        ('"caf\u00e9"', "caf\u00e9"),  # printable UTF-8 stays raw in %q
        ('"{\\"url\\": \\"http://x:1\\"}"', '{"url": "http://x:1"}'),
    ],
)
def test_go_unquote(quoted: str, value: str) -> None:
    assert go_unquote(quoted) == value


@pytest.mark.parametrize("bad", ["plain", '"open', '"a"b"', '"bad \\q"', '"\\x4"', '"\\uD800"', '"end\\"'])
def test_go_unquote_refuses(bad: str) -> None:
    with pytest.raises(QuoteError):
        go_unquote(bad)


def test_parse_downward_keeps_good_lines_and_names_bad_ones() -> None:
    text = 'app="fraud"\nmodeldeploy.io/track="canary"\nbroken\nx="unterminated\n\nnote="a=b"\n'
    items, problems = parse_downward(text)
    assert items == {"app": "fraud", "modeldeploy.io/track": "canary", "note": "a=b"}
    assert len(problems) == 2
    assert problems[0].startswith("line 3") and problems[1].startswith("line 4 (x)")


def test_pod_view_defaults_track_serving() -> None:
    assert pod_view({}, {}, "stable") == pod_view({}, {}, "stable")
    v = pod_view({}, {}, "stable")
    assert (v.track, v.serving, v.mirror, v.problems) == ("stable", True, None, ())
    v = pod_view({c.POD_LABEL_TRACK: "shadow", c.POD_LABEL_SERVING: "false"}, {}, "stable")
    assert (v.track, v.serving) == ("shadow", False)
    v = pod_view({c.POD_LABEL_TRACK: "blue", c.POD_LABEL_SERVING: "true"}, {}, "canary")
    assert (v.track, v.serving) == ("canary", True)
    assert "blue" in v.problems[0]


def test_parse_mirror_full_and_defaults() -> None:
    s, problem = parse_mirror(
        json.dumps(
            {
                "url": "http://fraud-canary.ml.svc:8080",
                "percent": 25,
                "candidate": "rev2",
                "timeoutMs": 250,
                "scoreTolerance": {"absolute": 0.01, "relative": 0.0},
            }
        )
    )
    assert problem is None and s is not None
    assert (s.url, s.host, s.port, s.percent, s.candidate) == (
        "http://fraud-canary.ml.svc:8080",
        "fraud-canary.ml.svc",
        8080,
        25.0,
        "rev2",
    )
    assert (s.timeout_s, s.absolute_tolerance, s.relative_tolerance) == (0.25, 0.01, 0.0)
    s, problem = parse_mirror('{"url": "http://10.0.0.1", "percent": 100, "candidate": "r"}')
    assert s is not None and s.port == 80 and s.timeout_s == c.DEFAULT_MIRROR_TIMEOUT_MS / 1000
    assert (s.absolute_tolerance, s.relative_tolerance) == (
        c.DEFAULT_MIRROR_ABSOLUTE_TOLERANCE,
        c.DEFAULT_MIRROR_RELATIVE_TOLERANCE,
    )
    assert parse_mirror(None) == (None, None)
    assert parse_mirror("  ") == (None, None)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"percent": 5, "candidate": "r"}', "url"),
        ('{"url": "https://x:1", "candidate": "r"}', "http://host"),
        ('{"url": "http://x:1/path", "candidate": "r"}', "http://host"),
        ('{"url": "http://x:99999", "candidate": "r"}', "port"),
        ('{"url": "http://x:1", "candidate": ""}', "candidate"),
        ('{"url": "http://x:1", "candidate": "r", "percent": 101}', "percent"),
        ('{"url": "http://x:1", "candidate": "r", "percent": "5"}', "percent"),
        ('{"url": "http://x:1", "candidate": "r", "percent": true}', "percent"),
        ('{"url": "http://x:1", "candidate": "r", "timeoutMs": 0}', "timeoutMs"),
        ('{"url": "http://x:1", "candidate": "r", "scoreTolerance": 3}', "scoreTolerance"),
        ('{"url": "http://x:1", "candidate": "r", "scoreTolerance": {"absolute": -1}}', "absolute"),
    ],
)
def test_parse_mirror_refusals_name_the_problem(raw: str, words: str) -> None:
    s, problem = parse_mirror(raw)
    assert s is None and problem is not None and words in problem
    view = pod_view({}, {c.POD_ANNOTATION_MIRROR: raw}, "stable")
    assert view.mirror is None and view.problems[0].endswith("mirror off")


def test_read_view_follows_the_atomic_symlink_swap(tmp_path: Path) -> None:
    pod = PodInfoDir(tmp_path / "podinfo")
    seen: list[PodView] = []
    watcher = PodWatcher(pod.root, "stable", seen.append)
    watcher.check()
    assert [(v.track, v.serving, v.mirror) for v in seen] == [("stable", True, None)]
    watcher.check()  # nothing changed: nothing applied
    assert len(seen) == 1
    pod.set(labels={c.POD_LABEL_TRACK: "canary", c.POD_LABEL_SERVING: "false", "app": 'quote " and \\ and \n'})
    pod.mirror("http://127.0.0.1:9", percent=50)
    watcher.check()
    assert len(seen) == 2
    v = seen[-1]
    assert (v.track, v.serving) == ("canary", False)
    assert v.mirror is not None and v.mirror.percent == 50
    assert len([p for p in (pod.root).iterdir() if p.name.startswith("..2026")]) == 1  # old versions removed
    pod.set(labels={c.POD_LABEL_SERVING: None, c.POD_LABEL_TRACK: None})
    pod.mirror(None)
    watcher.check()
    assert (seen[-1].track, seen[-1].serving, seen[-1].mirror) == ("stable", True, None)


def test_missing_files_count_as_empty_and_are_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    complaints: set[str] = set()
    raw, view = read_view(tmp_path / "absent", "shadow", complaints)
    assert raw == (b"", b"") and (view.track, view.serving, view.mirror) == ("shadow", True, None)
    read_view(tmp_path / "absent", "shadow", complaints)
    assert len(complaints) == 2  # one per file, not one per read
    assert sum("cannot read" in r.message for r in caplog.records) == 2


def test_render_round_trips_through_the_parser() -> None:
    items = {"a": 'x"y', "b": "back\\slash", "c": "multi\nline", "d": "\u00e9\t"}
    assert parse_downward(render(items)) == (items, [])
