"""Reference features of a BYOL checkpoint, computed by dm-haiku's own ``hk.nets.ResNet50`` (a subprocess:
JAX and TF stay out of the test process).

Usage: python haiku_byol.py PICKLE INPUTS.npz OUT.npz

The pickle is read with dill (as BYOL's own code does); the online network's ``res_net50/*`` params and
state feed ``hk.nets.ResNet50`` (same module names as BYOL's network) in inference mode. Its logits layer
is set to the identity, so the logits are the pooled 2048-d features.
"""

import sys

import dill
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np


def forward(images):
    return hk.nets.ResNet50(num_classes=2048)(images, is_training=False)


def main(pickle_path, inputs_path, out_path):
    with open(pickle_path, "rb") as fh:
        experiment = dill.load(fh)["experiment_state"]
    keep = lambda tree: {k: dict(v) for k, v in tree.items() if k.startswith("res_net50/")}  # noqa: E731
    params, state = keep(experiment.online_params), keep(experiment.online_state)
    params["res_net50/~/logits"] = {"w": np.eye(2048, dtype=np.float32), "b": np.zeros(2048, np.float32)}
    model = hk.without_apply_rng(hk.transform_with_state(forward))
    apply = jax.jit(model.apply)
    inputs = np.load(inputs_path)
    out = {f"features_{k}": np.asarray(apply(params, state, jnp.asarray(v.transpose(0, 2, 3, 1)))[0])
           for k, v in inputs.items()}
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
