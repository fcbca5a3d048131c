"""Reference features of a SimCLR TF1 checkpoint, computed by TensorFlow (run as a subprocess: never import
torch here, TF and torch in one process crash).

Usage: python tf_simclr.py INPUTS.npz SAVEV2_PREFIX PREFIX OUT.npz [PREFIX OUT.npz ...]

Builds SimCLR's ResNet-50 forward pass (resnet.py @85e8552: explicitly padded strided convs, BN eps 1e-5,
max-pool 3x3/2 "SAME", global mean) from the checkpoint's variables as ``tf.train.load_checkpoint`` reads
them. Writes, per checkpoint, the pooled features for every input in INPUTS.npz (NCHW, [0,1]) and the sha256
of every variable as TF read it; and at SAVEV2_PREFIX a checkpoint written by TF's own SaveV2 (some variables
of the first checkpoint) for the reader cross-check. One process for all: importing TF costs seconds.
"""

import hashlib
import sys

import numpy as np
import tensorflow as tf

BLOCKS = (3, 4, 6, 3)


def layer_names(index):
    suffix = f"_{index}" if index else ""
    return f"base_model/conv2d{suffix}/kernel", f"base_model/batch_normalization{suffix}"


class SimclrResNet50:
    def __init__(self, reader):
        self.reader = reader
        self.index = 0

    def conv_bn(self, x, stride, relu=True):
        kernel_name, bn = layer_names(self.index)
        self.index += 1
        kernel = self.reader.get_tensor(kernel_name)
        k = kernel.shape[0]
        if stride > 1:  # fixed_padding: pad (k-1)//2 before, the rest after, then VALID
            beg = (k - 1) // 2
            x = tf.pad(x, [[0, 0], [beg, k - 1 - beg], [beg, k - 1 - beg], [0, 0]])
        x = tf.nn.conv2d(x, kernel, stride, "VALID" if stride > 1 else "SAME")
        get = lambda f: self.reader.get_tensor(f"{bn}/{f}")  # noqa: E731
        x = tf.nn.batch_normalization(x, get("moving_mean"), get("moving_variance"), get("beta"), get("gamma"), 1e-5)
        return tf.nn.relu(x) if relu else x

    def __call__(self, x):
        self.index = 0
        x = self.conv_bn(x, 2)
        x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        for group, count in enumerate(BLOCKS):
            for block in range(count):
                stride = 2 if group > 0 and block == 0 else 1
                shortcut = self.conv_bn(x, stride, relu=False) if block == 0 else x  # projection is created first
                y = self.conv_bn(x, 1)
                y = self.conv_bn(y, stride)
                y = self.conv_bn(y, 1, relu=False)
                x = tf.nn.relu(y + shortcut)
        return tf.reduce_mean(x, axis=[1, 2])


def reference(prefix, inputs, out_path):
    reader = tf.train.load_checkpoint(prefix)
    model = SimclrResNet50(reader)
    out = {f"features_{k}": model(tf.constant(v.transpose(0, 2, 3, 1))).numpy() for k, v in inputs.items()}
    names = sorted(reader.get_variable_to_shape_map())
    out["names"] = np.array(names)
    out["sha256"] = np.array([hashlib.sha256(np.ascontiguousarray(reader.get_tensor(n)).tobytes()).hexdigest()
                              for n in names])
    np.savez(out_path, **out)
    return reader, names


def main(inputs_path, savev2_prefix, *pairs):
    inputs = dict(np.load(inputs_path))
    readers = [reference(prefix, inputs, out) for prefix, out in zip(pairs[::2], pairs[1::2])]
    reader, names = readers[0]
    chosen = [n for n in names if n.startswith("base_model/conv2d_1")][:3] + ["global_step"]
    tf.raw_ops.SaveV2(prefix=savev2_prefix, tensor_names=chosen, shape_and_slices=[""] * len(chosen),
                      tensors=[tf.constant(reader.get_tensor(n)) for n in chosen])


if __name__ == "__main__":
    main(*sys.argv[1:])
