"""The `quecmqtt` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from quecmqtt.errors import TranscriptError


def _cmd_decode(args: argparse.Namespace) -> int:
    from quecmqtt.decode import decode_raw, decode_transcript
    from quecmqtt.transcript import Transcript

    try:
        if args.raw:
            with open(args.file, "rb") as fh:
                events = decode_raw(fh.read())
        else:
            events = decode_transcript(Transcript.load(args.file))
        for obj in events:
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    except FileNotFoundError:
        print(f"quecmqtt decode: {args.file}: no such file", file=sys.stderr)
        return 2
    except (TranscriptError, UnicodeDecodeError) as exc:
        print(f"quecmqtt decode: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `quecmqtt decode x | head`
        return 0
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quecmqtt",
        description="Drive Quectel cellular modules over AT: MQTT, HTTP(S), Aliyun IoT, transcripts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    dec = sub.add_parser(
        "decode",
        help="print the events of a transcript as JSON lines",
        description=(
            "Run the AT codec over a transcript and print one JSON object per event: "
            "command (with its final result and lines), mqtt_message, mqtt_status, module_ready, "
            "powered_down, urc, final and garbage. Secret command arguments are shown as ***. "
            "See docs/decode.md for the format."
        ),
        epilog="Example: quecmqtt decode fixtures/seed/4.1.3-topic.txt | jq -c 'select(.event==\"mqtt_message\")'",
    )
    dec.add_argument("file", help="a transcript (.txt), or with --raw a plain capture of module output")
    dec.add_argument(
        "--raw",
        action="store_true",
        help="FILE is raw bytes read from the module (no host records): prefixed lines are URCs, "
        "final results appear as 'final' events",
    )
    dec.set_defaults(func=_cmd_decode)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
