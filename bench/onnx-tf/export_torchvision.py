"""Export torchvision resnet18 and mobilenet_v2 to ONNX for the ONNX -> TF SavedModel checks.

Run with the Debian interpreter (torch 1.13, torchvision 0.14), no network needed:

    /usr/bin/python3 bench/onnx-tf/export_torchvision.py OUT_DIR [MODEL ...]

Writes OUT_DIR/resnet18.onnx and OUT_DIR/mobilenet_v2.onnx (or only the MODELs named):
- random init: torch.manual_seed(0) before each model, weights=None, so nothing is downloaded;
- eval mode: the exporter folds BatchNorm (running statistics) into the convs, Dropout is off;
- opset 13, one input "input" [N,3,224,224] and one output "output" [N,1000], where N is a
  dynamic axis named "batch".
Prints one JSON line per model: {"model", "path", "bytes"}.
"""
import json
import os
import sys

import torch
import torchvision


MODELS = ("resnet18", "mobilenet_v2")


def export(name, out_dir):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    model.eval()
    path = os.path.join(out_dir, name + ".onnx")
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(
        model, x, path,
        opset_version=13,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True,
    )
    print(json.dumps({"model": name, "path": path, "bytes": os.path.getsize(path)}))


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: export_torchvision.py OUT_DIR [MODEL ...]\n")
        sys.exit(2)
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.stderr.write("unknown model(s) %s; choose from %s\n" % (", ".join(unknown), ", ".join(MODELS)))
        sys.exit(2)
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        export(name, out_dir)


if __name__ == "__main__":
    main()
