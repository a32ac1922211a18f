"""`kubectl modeldeploy`: read and steer ModelDeployment rollouts.

Exit codes (the same for every command):

  0  done: shown, or the operator did what the control asked (or it was already so)
  1  refused: the rollout is not in a state where the control means anything; nothing was written
  2  bad usage (unknown command or flag, bad value)
  3  no such ModelDeployment (or the CRD is not installed)
  4  timed out: the control was written but the operator did not take it in within --timeout
  5  the cluster could not be reached or refused us, or the kubeconfig is unusable
  6  the operator took the control in but did not act on it (the reason is in its Events)
 130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from . import controls, render, screen, tables
from .kube import Kube, KubeError, NotFoundError
from .style import Style

OK, REFUSED, USAGE, NOT_FOUND, TIMED_OUT, UNREACHABLE, IGNORED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 130

CONTROL_COMMANDS = ("approve", "abort", "retry", "promote", "pause", "resume")


class Api(Protocol):
    """What the commands need of the API edge (`kube.Kube`)."""

    def get(self, name: str) -> dict[str, Any]: ...
    def patch(self, name: str, body: dict[str, Any], field_manager: str) -> dict[str, Any]: ...
    def whoami(self) -> str: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return v


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", help="kubeconfig file (else $KUBECONFIG, ~/.kube/config, in-cluster)")
    common.add_argument("--context", help="the kubeconfig context to use (else its current-context)")
    common.add_argument("-n", "--namespace", help="namespace (else the context's, else default)")
    ap = argparse.ArgumentParser(
        prog="kubectl modeldeploy",
        description="Read and steer ModelDeployment rollouts (modeldeploy.io).",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", parents=[common], help="a rollout as a tree: revisions, step, verdict, history")
    p.add_argument("name")
    p.add_argument("-w", "--watch", action="store_true", help="redraw in place as it changes (Ctrl-C to stop)")
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between reads with --watch (1)")
    p.add_argument("--timeout", type=_positive, help="stop watching after this many seconds")
    p.add_argument("--no-color", action="store_true", help="no colour even on a terminal (also NO_COLOR)")

    p = sub.add_parser("list", parents=[common], help="ModelDeployments with phase, versions, weights, step")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")

    p = sub.add_parser("history", parents=[common], help="the audit trail: every decision, who, why, when")
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")

    helps = {
        "approve": "pass the approval step the canary waits at",
        "abort": "roll the canary back now",
        "retry": "let the rolled-back revision roll out again",
        "promote": "pass the step that waits for a person (approval or untimed pause); --full: skip every step",
        "pause": "hold the rollout where it is (spec.paused: true)",
        "resume": "resume a paused rollout, or pass an untimed pause step",
    }
    for name in CONTROL_COMMANDS:
        p = sub.add_parser(name, parents=[common], help=helps[name])
        p.add_argument("name")
        p.add_argument("--timeout", type=_positive, default=60.0, help="seconds to wait for the operator (60)")
        p.add_argument("--no-wait", action="store_true", help="write the control and return (exit 0)")
        if name == "abort":
            p.add_argument("--reason", help="why (a ticket number, ...): the annotation's value, kept in history")
        if name == "promote":
            p.add_argument("--full", action="store_true", help="skip every remaining step and the analysis")
    return ap


def poll(
    read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any] | None:
    """Read until `done` (the object), or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        obj = read()
        if done(obj):
            return obj
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)  # poll


def run_control(kube: Api, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    name = args.name
    obj = kube.get(name)
    author = kube.whoami()
    cmd = args.command
    now = _now()
    plan: controls.Plan | controls.Refusal | controls.Noop
    if cmd == "approve":
        plan = controls.plan_approve(obj, author)
    elif cmd == "abort":
        plan = controls.plan_abort(obj, author, args.reason, now)
    elif cmd == "retry":
        plan = controls.plan_retry(obj, author)
    elif cmd == "promote":
        plan = controls.plan_promote_full(obj, author, now) if args.full else controls.plan_promote(obj, author)
    elif cmd == "pause":
        plan = controls.plan_pause(obj)
    else:
        plan = controls.plan_resume(obj)
    if isinstance(plan, controls.Refusal):
        err.write(f"kubectl modeldeploy {cmd}: {name}: {plan.message}\n")
        return REFUSED
    if isinstance(plan, controls.Noop):
        out.write(f"{name}: {plan.message}\n")
        return OK
    before = obj
    after = obj
    manager = controls.field_manager(author)
    for i, w in enumerate(plan.writes):
        patched = kube.patch(name, w.patch, manager)
        out.write(f"{name}: {w.what} (as {author})\n")
        if args.no_wait and i == len(plan.writes) - 1:
            continue  # a write that the next one needs taken in (pause, then resume) is waited for anyway
        seen = poll(lambda: kube.get(name), functools.partial(w.taken, patched), args.timeout)
        if seen is None:
            err.write(
                f"kubectl modeldeploy {cmd}: {name}: the operator did not take it in within {args.timeout:g}s"
                " (is it running? kubectl get events)\n"
            )
            return TIMED_OUT
        after = seen
    if args.no_wait:
        return OK
    result, lines = controls.outcome(plan, before, after, _now())
    for line in lines:
        out.write(f"  {line}\n")
    if result == "ignored":
        err.write(
            f"kubectl modeldeploy {cmd}: {name}: the operator recorded the control but did not act"
            f" ({plan.expect} expected); its Events say why: kubectl get events --field-selector"
            f" involvedObject.name={name}\n"
        )
        return IGNORED
    return OK


def _terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def run_status(kube: Api, args: argparse.Namespace, out: TextIO) -> int:
    tty = _terminal(out)
    style = Style(tty and not args.no_color and not os.environ.get("NO_COLOR"))
    if not args.watch:
        out.write(render.status_tree(kube.get(args.name), _now(), style) + "\n")
        return OK
    deadline = time.monotonic() + args.timeout if args.timeout else None
    last_text = None
    last_version = None
    first = True
    try:
        while True:
            obj = kube.get(args.name)
            text = render.status_tree(obj, _now(), style)
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if tty:
                if text != last_text:
                    size = shutil.get_terminal_size()
                    out.write(screen.frame(text, size.columns, size.lines, first))
                    out.flush()
                    first = False
            elif version != last_version:
                # off a terminal: a new frame only when the object changed, never for the ages alone
                out.write(("" if first else "\n") + text + "\n")
                out.flush()
                first = False
            last_text, last_version = text, version
            if deadline is not None and time.monotonic() >= deadline:
                return OK
            time.sleep(args.interval)  # poll
    finally:
        if tty and not first:
            out.write(screen.SHOW_CURSOR)
            out.flush()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        kube = Kube(args.kubeconfig, args.context, args.namespace)
        if args.command == "status":
            return run_status(kube, args, out)
        if args.command == "list":
            out.write(tables.list_rows(kube.list(args.all_namespaces), _now(), args.all_namespaces) + "\n")
            return OK
        if args.command == "history":
            obj = kube.get(args.name)
            text = tables.history_json(obj) if args.output == "json" else tables.history_table(obj, _now())
            out.write(text + "\n")
            return OK
        return run_control(kube, args, out, err)
    except NotFoundError as e:
        err.write(f"kubectl modeldeploy {args.command}: {e}\n")
        return NOT_FOUND
    except KubeError as e:
        err.write(f"kubectl modeldeploy {args.command}: {e}\n")
        return UNREACHABLE
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        return OK
