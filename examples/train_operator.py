"""Train a DeepONet on the antiderivative operator with the library API (no CLI).

Generates a small copy of the antiderivative dataset, trains for a short budget on the CPU,
evaluates on the test split and reloads the checkpoint. About a minute on a laptop.
Run from the repository root: ``python examples/train_operator.py [--epochs N]``.
"""

import argparse

import torch

import pdekit
from pdekit.data import generate, load_recipe, open_dataset
from pdekit.models import DeepONet
from pdekit.train import Trainer, evaluate

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=300)
parser.add_argument("--out", default="runs/example-deeponet")
args = parser.parse_args()

recipe = load_recipe("datasets/antiderivative.toml").replace(samples=1000)  # 1000 functions
generate(recipe, "data/antiderivative-n1000", progress=False)
train = open_dataset("data/antiderivative-n1000", "train")  # items {"u": (100,), "s": (100,)}
test = open_dataset("data/antiderivative-n1000", "test")

torch.manual_seed(0)
model = DeepONet(branch=[100, 40, 40], trunk=[1, 40, 40])  # Lu et al. 2021
trainer = Trainer(model, train, test, epochs=args.epochs, batch_size=100, lr=1e-3, loss="mse",
                  normalization="none", eval_every=50, out=args.out)
trainer.fit()

result = evaluate(pdekit.load(f"{args.out}/best.pt"), test, inputs=["u"], outputs=["s"])
print(f"test relative L2 {result['metrics']['relative_l2']:.3e}, MSE {result['metrics']['mse']:.2e}")
