#!/usr/bin/env python3
"""Writes a checkpoint in the layout of torchvision's mobilenet_v3_small-047dcff4.pth, without torch.

Usage: torchvision_checkpoint.py OUT.pth [--nan]

The state dict has torchvision's tensor names, shapes and dtypes (derived here from torchvision's
MobileNetV3 construction, independently of the trainer's loader) and is written as torch.save does
since PyTorch 1.6: a zip of archive/data.pkl (pickle protocol 2; each tensor a
torch._utils._rebuild_tensor_v2 call on a storage given by persistent id) and archive/data/<key>
(the storages' little-endian bytes). Tensor number i (counted from 0 in state-dict order) holds
i + (k mod 1000) / 1024 at flat index k, exactly representable in float32; with --nan, every float
is NaN (a diverged run's weights).
Prints {"name": i, ...} as JSON on stdout.
"""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

# Stand-ins for the torch objects a checkpoint refers to by name: pickle writes only their
# module and name, which is all a reader looks at.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


class LongStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise NotImplementedError("written, never read, here")


for cls in (FloatStorage, LongStorage):
    cls.__module__ = "torch"
    setattr(torch, cls.__name__, cls)
_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key, kind, data):
        self.key, self.kind, self.data = key, kind, data


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, step = [], 1
        for size in reversed(self.shape):
            stride.insert(0, step)
            step *= size
        args = (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict())
        return (_rebuild_tensor_v2, args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            numel = len(obj.data) // (8 if obj.kind is LongStorage else 4)
            return ("storage", obj.kind, obj.key, "cpu", numel)
        return None


def make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# torchvision's mobilenet_v3_small: (input, kernel, expanded, out, use_se, activation, stride).
SMALL = [
    (16, 3, 16, 16, True, "RE", 2),
    (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1),
    (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
]


def state_dict_layout():
    """(name, shape, is_float) in the order torchvision's state_dict() lists them."""
    out = []

    def conv_norm(prefix, cin, cout, kernel, groups):
        out.append((f"{prefix}.0.weight", [cout, cin // groups, kernel, kernel], True))
        for p in ("weight", "bias", "running_mean", "running_var"):
            out.append((f"{prefix}.1.{p}", [cout], True))
        out.append((f"{prefix}.1.num_batches_tracked", [], False))

    conv_norm("features.0", 3, 16, 3, 1)
    for i, (cin, kernel, expanded, cout, se, _act, _stride) in enumerate(SMALL):
        block = f"features.{i + 1}.block"
        j = 0
        if expanded != cin:
            conv_norm(f"{block}.{j}", cin, expanded, 1, 1)
            j += 1
        conv_norm(f"{block}.{j}", expanded, expanded, kernel, expanded)
        j += 1
        if se:
            squeeze = make_divisible(expanded // 4)
            out.append((f"{block}.{j}.fc1.weight", [squeeze, expanded, 1, 1], True))
            out.append((f"{block}.{j}.fc1.bias", [squeeze], True))
            out.append((f"{block}.{j}.fc2.weight", [expanded, squeeze, 1, 1], True))
            out.append((f"{block}.{j}.fc2.bias", [expanded], True))
            j += 1
        conv_norm(f"{block}.{j}", expanded, cout, 1, 1)
    conv_norm(f"features.{len(SMALL) + 1}", 96, 576, 1, 1)
    out.append(("classifier.0.weight", [1024, 576], True))
    out.append(("classifier.0.bias", [1024], True))
    out.append(("classifier.3.weight", [1000, 1024], True))
    out.append(("classifier.3.bias", [1000], True))
    return out


def main():
    path = sys.argv[1]
    nan = "--nan" in sys.argv[2:]
    state = collections.OrderedDict()
    ids = {}
    storages = []
    for i, (name, shape, is_float) in enumerate(state_dict_layout()):
        numel = 1
        for size in shape:
            numel *= size
        if is_float:
            values = [float("nan") if nan else i + (k % 1000) / 1024 for k in range(numel)]
            data, kind = struct.pack(f"<{numel}f", *values), FloatStorage
        else:
            data, kind = struct.pack("<q", 12345), LongStorage
        storage = Storage(str(i), kind, data)
        storages.append(storage)
        state[name] = Tensor(storage, shape)
        ids[name] = i
    # state_dict() carries each module's version, as torch.save writes it.
    state._metadata = collections.OrderedDict([("", {"version": 1})])

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(state)
        z.writestr("archive/data.pkl", buffer.getvalue())
        z.writestr("archive/byteorder", "little")
        for storage in storages:
            z.writestr(f"archive/data/{storage.key}", storage.data)
        z.writestr("archive/version", "3\n")
    print("{" + ", ".join(f'"{name}": {i}' for name, i in ids.items()) + "}")


if __name__ == "__main__":
    main()
