"""``edge-anpr``: the command line for field engineers, testers and the central side.

Exit codes: 0 success; 1 unexpected error; 2 bad configuration or usage; 3 camera/source;
4 model; 5 broker; 6 state directory; 75 ``run`` stopped to start again with another config (a pushed config
applied or rolled back: systemd's ``Restart=on-failure`` restarts it).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from edge import __version__
from edge.errors import EdgeError, StateError

log = logging.getLogger("edge")
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)

EPILOG = """\
examples:
  edge-anpr check-config /etc/edge-anpr/config.yaml     validate a config file, change nothing
  edge-anpr run --config /etc/edge-anpr/config.yaml     run the node (what the systemd service does)
  edge-anpr replay recording.mp4 --broker 127.0.0.1:1883 replay a recording through the same pipeline
  edge-anpr sample-scene out/scene.mp4                  render a synthetic scene with ground truth

exit codes: 0 ok, 2 bad config or usage, 3 camera/source, 4 model, 5 broker, 6 state directory,
            7 clock (selftest), 8 disk (selftest), 75 run restarts with another config (pushed or rolled back)
"""

# Subcommands that live beside their stage: (name(s), module, help). Each module exposes
# configure_parser(parser) and main(args) -> int. Each is imported to build its parser;
# its heavy imports (models, MQTT) wait inside main().
PLUGGED: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("eval", "faces"), "edge.evaluate.faces", "score face redaction on a labelled folder (labels.csv)"),
    (("eval", "plates"), "edge.evaluate.plates", "score plate detection and reading on a labelled folder"),
    (("audit", "verify"), "edge.privacy.audit", "check the hash chain of the audit log"),
    (("listen",), "edge.central.listen", "reference central subscriber: validate, de-duplicate, store reads"),
    (("central", "purge"), "edge.central.retention",
     "remove what the centre keeps past its retention (the node's classes), once; for cron"),
    (("fleet",), "edge.central.fleet_cli",
     "run the fleet from the centre: keys, signed hotlist pushes, what each node applied or refused"),
    (("bench", "outbox"), "edge.publish.bench", "measure outbox -> broker throughput and backlog drain"),
    (("bench", "central"), "edge.central.bench",
     "measure reads/s from Mosquitto into PostgreSQL through 1 and 3 shared-subscription listeners"),
    (("bench", "fleet"), "edge.central.fleet_bench",
     "measure a hotlist push to N nodes through Mosquitto: time until every node applied it, bytes sent"),
    (("bench", "pipeline"), "edge.cli.bench", "measure whole-pipeline fps, latency and memory on a replay"),
    (("bench", "redaction"), "edge.privacy.bench", "measure face redaction time per image on one thread"),
    (("bench", "update"), "edge.central.release_bench",
     "measure an over-the-air update N -> N+1 -> N through a TUF repository on loopback: time and bytes per step"),
    (("selftest",), "edge.node.selftest", "check config, models, camera, broker, clock and disk; print a table"),
    (("provision",), "edge.node.provision", "write a site config and create this node's key and CSR"),
    (("firstboot",), "edge.node.firstboot",
     "take this unit's identity from edge-anpr-node.yaml on the boot partition (a card image for many units)"),
    (("update",), "edge.node.update_cli",
     "over-the-air update of this node: recover, check, install, switch, confirm or roll back (TUF-verified)"),
    (("aim",), "edge.node.aim", "help aim the camera: plate widths in pixels and an annotated still"),
    (("sample-plates",), "edge.sample.stills",
     "render labelled still images of plates (by day or under an IR lamp at night) for eval plates"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-anpr",
        description="On-device number plate reading that publishes only what the privacy policy allows.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-anpr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "check-config", help="validate a config file and exit (2 when invalid)",
        description="Validate a config file, then check on this machine everything start-up would refuse (formats, "
        "model files, state directory, hotlist, key and certificate files, a replay source). Changes nothing; "
        "exit 2 naming every problem.")
    p.add_argument("config", metavar="FILE", help="YAML config file")
    p.add_argument("--schema-only", action="store_true",
                   help="check the file alone, not the files it names (e.g. a config for another machine)")
    p.set_defaults(func=_lazy("edge.cli.commands", "check_config"))

    p = sub.add_parser("run", help="run the node from its config (camera or stream, publish to the broker)")
    p.add_argument("--config", "-c", default="/etc/edge-anpr/config.yaml", help="config file (default: %(default)s)")
    p.set_defaults(func=_lazy("edge.cli.commands", "run"))

    p = sub.add_parser(
        "replay",
        help="replay a video file, image folder or stream URL through the production pipeline",
        description="Runs the exact production pipeline (detect, read, track, privacy, outbox, publish) over a "
        "recording. Frame times come from the recording (or --start), so a replay is deterministic.",
    )
    p.add_argument("source", metavar="SOURCE", help="video file, folder of images, or stream URL")
    p.add_argument("--config", "-c", help="YAML config (default: a lab config with site 'replay')")
    p.add_argument("--broker", metavar="HOST:PORT", help="publish to this broker (plain TCP, lab mode)")
    p.add_argument("--start", metavar="ISO8601", help="UTC time of the first frame (default: scene sidecar or mtime)")
    p.add_argument("--fps", type=float, help="frame rate for an image folder (default: config, 25)")
    p.add_argument("--realtime", action="store_true", help="pace at the recording's rate and drop like a live camera")
    p.add_argument("--overview", metavar="VIDEO",
                   help="the overview camera's recording (or URL): its frame nearest each read is the overview image")
    p.add_argument("--overview-offset", type=float, metavar="S",
                   help="the overview recording starts S seconds after SOURCE (default: from the two scene "
                        "sidecars, else the config's capture.overview.offset_s, else 0)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="threads that detect and read (default: the config's detect.workers; 0: one per core, at "
                        "most 4); the same number gives the same reads on any machine")
    p.add_argument("--state-dir", help="outbox directory (default: config, or ./var/replay)")
    p.add_argument("--truth", metavar="CSV", help="score against ground truth (plate,first_seen_s,last_seen_s)")
    p.add_argument("--report", metavar="DIR", help="write an HTML report of the replay")
    p.add_argument("--json", action="store_true", help="print one JSON summary object at the end")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-read lines")
    p.set_defaults(func=_lazy("edge.cli.commands", "replay"))

    p = sub.add_parser("sample-scene", help="render the synthetic sample scene (video + sidecar + truth CSV)")
    p.add_argument("output", metavar="VIDEO", help="output .mp4 path")
    p.add_argument("--seed", type=int, default=7, help="scene seed (default: %(default)s)")
    p.add_argument("--vehicles", type=int, default=4, help="number of vehicles (default: %(default)s)")
    p.add_argument("--scenario", choices=("default", "overtake", "stop", "speeds", "night", "faces", "mixed"),
                   help="a named scene instead of --vehicles (night: the plate camera's IR look)")
    p.add_argument("--overview", action="store_true",
                   help="also render the overview camera (colour, wider) as VIDEO's <name>.overview.mp4")
    p.add_argument("--overview-offset", type=float, default=0.0, metavar="S",
                   help="the overview recording starts S seconds after the plate recording (default: %(default)s)")
    p.set_defaults(func=_lazy("edge.cli.commands", "sample_scene"))

    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for names, module, text in PLUGGED:
        if len(names) == 1:
            target = sub.add_parser(names[0], help=text, description=text)
        else:
            if names[0] not in groups:
                group = sub.add_parser(names[0], help=f"{names[0]} commands")
                groups[names[0]] = group.add_subparsers(dest="subcommand", metavar="WHAT", required=True)
            target = groups[names[0]].add_parser(names[1], help=text, description=text)
        plugged = importlib.import_module(module)
        plugged.configure_parser(target)
        target.set_defaults(func=_lazy(module, "main"))
    return parser


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        func: Any = getattr(importlib.import_module(module), name)
        return int(func(args))

    return call


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(2, args.verbose)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except EdgeError as exc:
        print(f"edge-anpr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file system error no layer expected (a full disk, a read-only card): one line
        code = StateError.exit_code if exc.errno in _DISK_ERRNOS else 1
        print(f"edge-anpr: error: {exc}", file=sys.stderr)
        log.debug("details", exc_info=True)
        return code
    except Exception as exc:  # a bug: one line for the user, the traceback with -v
        print(f"edge-anpr: internal error: {type(exc).__name__}: {exc} (run with -v to see where)", file=sys.stderr)
        log.info("traceback", exc_info=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
