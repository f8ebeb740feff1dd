#!/usr/bin/env python3
"""Reads the TensorBoard event files of run folders with TensorBoard's own readers and prints,
per run, every tag with its kind and steps, and the last value of each scalar. Needs the
`tensorboard` package (a scratch venv is enough: python3 -m venv /tmp/tb && /tmp/tb/bin/pip install
tensorboard), not the project's .venv.

    /tmp/tb/bin/python scripts/check_events.py logs/cifar10/res18/baseline logs/cifar10/res18/rs_ra

Exits non-zero when a folder has no event file or TensorBoard reads no summary from it.
"""
import sys

from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator


def main(dirs):
    failed = False
    for d in dirs:
        legacy = event_accumulator.EventAccumulator(d, size_guidance={k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE})
        legacy.Reload()
        tags = legacy.Tags()
        # what TensorBoard's plugins see: legacy values migrated to tensors with plugin metadata
        plugin = plugin_event_accumulator.EventAccumulator(d, size_guidance={"tensors": 0})
        plugin.Reload()
        plugins = {}
        for tag in plugin.Tags()["tensors"]:
            name = plugin.SummaryMetadata(tag).plugin_data.plugin_name
            plugins.setdefault(name, []).append(tag)
        print(f"== {d}")
        n = sum(len(tags[k]) for k in ("scalars", "images", "histograms"))
        if n == 0:
            print("  no summary read")
            failed = True
        for tag in tags["scalars"]:
            events = legacy.Scalars(tag)
            print(f"  scalar    {tag:<40} steps {[e.step for e in events]} last {events[-1].value:.6g}")
        for tag in tags["images"]:
            events = legacy.Images(tag)
            print(f"  image     {tag:<40} steps {[e.step for e in events]} {events[-1].width}x{events[-1].height}, {len(events[-1].encoded_image_string)} bytes PNG")
        for tag in tags["histograms"]:
            events = legacy.Histograms(tag)
            h = events[-1].histogram_value
            print(f"  histogram {tag:<40} steps {[e.step for e in events]} num {h.num:g} min {h.min:.4g} max {h.max:.4g} buckets {len(h.bucket)} (sum {sum(h.bucket):g})")
        for name in sorted(plugins):
            print(f"  plugin {name}: {len(plugins[name])} tags")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
