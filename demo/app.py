"""Gradio demo over an exported bundle: early-exit predictions, the accuracy/latency trade-off, the model card.

    python demo/app.py --bundle export/oto_resnet18-quick [--teacher-bundle DIR] [--data ROOT] [--host 127.0.0.1] [--port N]

Same as `edgekd demo BUNDLE`. Needs the demo extra: pip install 'edgekd[demo]'.
"""
import sys

from edgekd.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--bundle" in argv:  # `--bundle X` here is the positional BUNDLE of `edgekd demo`
        i = argv.index("--bundle")
        argv = [argv[i + 1], *argv[:i], *argv[i + 2:]] if i + 1 < len(argv) else argv
    sys.exit(main(["demo", *argv]))
