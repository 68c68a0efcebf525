#!/usr/bin/python3
"""Train the small Fashion-MNIST CNN used by `npm run bench:accuracy` and write its fixture.

Regenerate (about 2-4 minutes on 2 CPU cores, Debian packages only):

    apt-get install -y dataset-fashion-mnist python3-torch python3-onnx
    /usr/bin/python3 bench/accuracy/train.py [OUT_DIR]

Writes, into test/fixtures/fashion-mnist/ (relative to the repository root) or OUT_DIR:

    cnn.onnx                 fp32 model, opset 13, input "input" [N,1,28,28] float32, output "logits" [N,10]
    test-images.idx3-ubyte   the first SUBSET images of the official test set, uncompressed IDX
    test-labels.idx1-ubyte   their labels, uncompressed IDX
    meta.json                subset size, normalisation, accuracies measured here in torch

Input normalisation, done identically by src/bench/accuracy.ts: x = pixel / 255 (float32, [0, 1]);
no mean/std shift, so the Node side needs no constants beyond 255.

Only the 60,000 training images are used for training; the test images in the fixture are never seen,
and nothing is tuned on them (fixed epochs, fixed learning rate).
"""
import gzip
import json
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20231
EPOCHS = 5
BATCH = 128
LR = 2e-3
SUBSET = 2000  # first SUBSET images of t10k; 784 bytes each, so 2000 keeps the fixture around 2 MB

DATA = os.environ.get('FASHION_MNIST_DIR', '/usr/share/datasets/fashion-mnist')
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
# An optional first argument writes elsewhere (e.g. to compare a re-run with the committed fixture).
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, 'test', 'fixtures', 'fashion-mnist')


def read_idx(path):
    """IDX file (optionally gzipped) → numpy uint8 array with the file's dims."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    zero, dtype, rank = struct.unpack('>HBB', data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f'{path}: not an unsigned-byte IDX file')
    dims = struct.unpack('>' + 'I' * rank, data[4:4 + 4 * rank])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    return arr.reshape(dims)


def write_idx(path, arr):
    """Uncompressed IDX: 0x0000, type 0x08 (ubyte), rank, big-endian uint32 dims, then the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, 'wb') as f:
        f.write(struct.pack('>HBB', 0, 0x08, arr.ndim))
        f.write(struct.pack('>' + 'I' * arr.ndim, *arr.shape))
        f.write(arr.tobytes())


class Dense(nn.Module):
    """x @ W + b with W stored [in, out]: exports as MatMul + Add (not Gemm), so the MatMul-only
    passes (dynamic int8 MatMulInteger, int4 MatMulNBits) have fully connected layers to rewrite."""

    def __init__(self, n_in, n_out):
        super().__init__()
        lin = nn.Linear(n_in, n_out)  # borrow its default initialisation
        self.weight = nn.Parameter(lin.weight.detach().t().contiguous())
        self.bias = nn.Parameter(lin.bias.detach().clone())

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


class Net(nn.Module):
    # Valid convolutions: 28 → 26 → pool 13 → 11 → pool 5, so the flattened size is 32·5·5 = 800
    # (a multiple of 4 and of the int4 block 32) and fc1 stays ~100 k weights (~400 KB in fp32).
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = Dense(32 * 5 * 5, 128)
        self.fc2 = Dense(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def to_input(images):
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def accuracy(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return 100.0 * correct / len(x)


def main():
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    train_x = to_input(read_idx(os.path.join(DATA, 'train-images-idx3-ubyte.gz')))
    train_y = torch.from_numpy(read_idx(os.path.join(DATA, 'train-labels-idx1-ubyte.gz')).astype(np.int64))
    test_images = read_idx(os.path.join(DATA, 't10k-images-idx3-ubyte.gz'))
    test_labels = read_idx(os.path.join(DATA, 't10k-labels-idx1-ubyte.gz'))
    test_x = to_input(test_images)
    test_y = torch.from_numpy(test_labels.astype(np.int64))

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS * ((len(train_x) + BATCH - 1) // BATCH))
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.time()
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(train_x), generator=gen)
        total = 0.0
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f'epoch {epoch + 1}/{EPOCHS}: loss {total / len(train_x):.4f}, {time.time() - t0:.0f} s', file=sys.stderr)

    model.eval()
    acc_full = accuracy(model, test_x, test_y)
    acc_subset = accuracy(model, test_x[:SUBSET], test_y[:SUBSET])
    print(f'test accuracy: {acc_full:.2f}% (10,000), {acc_subset:.2f}% (first {SUBSET})', file=sys.stderr)

    os.makedirs(OUT, exist_ok=True)
    onnx_path = os.path.join(OUT, 'cnn.onnx')
    # Eval mode: the exporter folds each BatchNorm into the preceding Conv's weight and bias.
    torch.onnx.export(
        model, torch.zeros(1, 1, 28, 28), onnx_path,
        opset_version=13, input_names=['input'], output_names=['logits'],
        dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, do_constant_folding=True,
    )
    write_idx(os.path.join(OUT, 'test-images.idx3-ubyte'), test_images[:SUBSET])
    write_idx(os.path.join(OUT, 'test-labels.idx1-ubyte'), test_labels[:SUBSET])

    # Logits of the first images, so the Node side can check it feeds the model identically.
    with torch.no_grad():
        head = model(test_x[:4]).numpy()
    meta = {
        'source': 'Fashion-MNIST t10k (Zalando SE, MIT licence), Debian package dataset-fashion-mnist',
        'subset': SUBSET,
        'normalisation': 'x = pixel / 255, float32, NCHW [N,1,28,28]',
        'seed': SEED,
        'epochs': EPOCHS,
        'torch': torch.__version__,
        'torch_accuracy_subset_pct': round(acc_subset, 2),
        'torch_accuracy_full_test_pct': round(acc_full, 2),
        'torch_logits_first4': [[round(float(v), 5) for v in row] for row in head],
    }
    with open(os.path.join(OUT, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')
    print(f'wrote {OUT}', file=sys.stderr)


if __name__ == '__main__':
    main()
