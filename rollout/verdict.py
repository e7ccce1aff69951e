"""``python -m rollout.verdict``: PROMOTE, HOLD or ROLL BACK a canary, from the last minutes in Prometheus.

    python -m rollout.verdict --prometheus http://prometheus:9090 --namespace text-classifier --isvc sentiment

Reads the predictor revisions of one InferenceService (the ``revision`` label of the
chart's PodMonitor) and the transformer's shadow comparisons, checks them (see
rollout/analysis.py for each check and its threshold), prints the evidence and the
verdict, and exits 0 (PROMOTE), 3 (HOLD) or 4 (ROLL BACK); 1 when no verdict could be
reached (Prometheus unreachable, kubectl failed), 2 for bad flags. It prints the
``kubectl patch`` that acts on the verdict (canaryTrafficPercent 100 to promote, 0 to
roll back); ``--apply`` runs it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import asdict, fields

from rollout.analysis import EXIT_CODES, HOLD, PROMOTE, ROLL_BACK, Figures, Thresholds, checks, decide, pick
from rollout.prometheus import Prometheus, PrometheusError

HELP = {
    "max_p99_ratio": "roll back when the canary's p99 latency is more than this times the primary's ...",
    "p99_slack_ms": "... and more than this many ms slower (small latencies are noisy)",
    "max_error_increase": "roll back when the canary's 5xx+429 ratio exceeds the primary's by more than this",
    "max_label_divergence": "roll back when the Jensen-Shannon divergence (bits) of the top-label shares is above this",
    "min_shadow_agreement": "roll back when fewer shadowed texts than this share get the primary's top label",
    "min_requests": "hold while either revision has fewer requests in the window",
    "min_texts": "hold while either revision answered fewer texts; shadow agreement needs this many compared",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rollout.verdict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL (default: %(default)s)")
    add("--namespace", required=True, help="namespace of the InferenceService (the scrape's namespace label)")
    add("--isvc", required=True, help="InferenceService name (the scrape's isvc label)")
    add("--window", default="10m", help="how far back to look, a Prometheus duration (default: %(default)s)")
    add("--primary_revision", default=None, help="default: the busiest revision that is not the canary")
    add("--canary_revision", default=None, help="default: the newest revision (Knative numbers revisions)")
    defaults = Thresholds()
    for spec in fields(Thresholds):
        value = getattr(defaults, spec.name)
        add(f"--{spec.name}", type=type(value), default=value, help=f"{HELP[spec.name]} (default: {value})")
    add("--output", choices=("text", "json"), default="text", help="text for people, json for pipelines")
    add("--apply", action="store_true", help="run the kubectl patch that acts on the verdict (off by default)")
    add("--kubectl", default="kubectl", help="kubectl binary (default: %(default)s)")
    return parser


# charts/text-classifier/templates/_helpers.tpl, tc.pinAnnotation
CACHE_PIN_ANNOTATION = "text-classifier.kserve.io/cache-model-version"


def patch_command(kubectl: str, namespace: str, isvc: str, verdict: str) -> list[str] | None:
    """The kubectl patch for a verdict: the canary takes 100% on promote, 0% on roll back; None on hold.

    Promoting also empties the transformer's cache pin (the chart's CACHE_MODEL_VERSION comes
    from this annotation), so it follows the promoted model's version at once; a roll back
    keeps the pin, which names the primary that stays.
    """
    percent = {PROMOTE: 100, ROLL_BACK: 0}.get(verdict)
    if percent is None:
        return None
    patch: dict = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
    if verdict == PROMOTE:
        patch["metadata"] = {"annotations": {CACHE_PIN_ANNOTATION: ""}}
    body = json.dumps(patch, separators=(",", ":"))
    return [kubectl, "patch", "inferenceservice", isvc, "-n", namespace, "--type", "merge", "-p", body]


def report(args, primary, canary, found, verdict) -> str:
    lines = [f"Canary verdict for {args.isvc} in {args.namespace}, last {args.window} ({args.prometheus})"]
    for role, revision in (("primary", primary), ("canary", canary)):
        if revision is not None:
            lines.append(f"  {role:8} {revision.name}  model_version {revision.model_version}  "
                         f"{revision.requests:.0f} requests  {revision.texts:.0f} texts")
    width = max(len(check.name) for check in found)
    for check in found:
        lines.append(f"  {check.result.upper():12} {check.name:{width}}  {check.value}  [{check.condition}; "
                     f"{check.rests_on}]")
    reasons = [check.name for check in found if check.result == ("fail" if verdict == ROLL_BACK else "inconclusive")]
    lines.append(f"{verdict}" + (f": {', '.join(reasons)}" if reasons else ": every check passed"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    thresholds = Thresholds(**{spec.name: getattr(args, spec.name) for spec in fields(Thresholds)})
    figures = Figures(Prometheus(args.prometheus), args.namespace, args.isvc, args.window)
    try:
        revisions = figures.revisions()
        primary, canary = pick(revisions, args.primary_revision, args.canary_revision)
        found = checks(primary, canary, figures.shadow(), thresholds)
    except PrometheusError as exc:
        print(f"rollout.verdict: no verdict: {exc}", file=sys.stderr)
        return 1
    verdict = decide(found)
    command = patch_command(args.kubectl, args.namespace, args.isvc, verdict) if canary is not None else None
    if args.output == "json":
        print(json.dumps({"verdict": verdict, "exit_code": EXIT_CODES[verdict],
                          "primary": asdict(primary) if primary else None, "canary": asdict(canary) if canary else None,
                          "checks": [asdict(check) for check in found],
                          "command": shlex.join(command) if command else None, "applied": bool(command and args.apply)},
                         indent=2))
    else:
        print(report(args, primary, canary, found, verdict))
    if command is None:
        if verdict != HOLD:
            print("no canary revision: nothing to patch", file=sys.stderr)
        return EXIT_CODES[verdict]
    if not args.apply:
        print(f"to act on it: {shlex.join(command)}", file=sys.stderr if args.output == "json" else sys.stdout)
        return EXIT_CODES[verdict]
    print(f"ran: {shlex.join(command)}", file=sys.stderr if args.output == "json" else sys.stdout)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"rollout.verdict: {verdict}, but {command[0]} did not run: {exc}", file=sys.stderr)
        return 1
    sys.stderr.write(done.stderr)
    sys.stdout.write(done.stdout) if args.output == "text" else sys.stderr.write(done.stdout)
    if done.returncode != 0:
        print(f"rollout.verdict: {verdict}, but the patch failed (exit {done.returncode})", file=sys.stderr)
        return 1
    return EXIT_CODES[verdict]


if __name__ == "__main__":
    sys.exit(main())
